// What the annotator has made on the points page: labels, each with its points (percent
// of the image width and height) or "not present", the active label, the selected point,
// and an undo history of snapshots. No DOM here: the page renders it.

export interface Point {
  x: number; // percent of the image width, 0..100
  y: number; // percent of the image height, 0..100
}

export interface Label {
  name: string;
  points: Point[];
  notPresent: boolean;
  seconds: number; // time this label was the active one
  fixed: boolean; // a campaign prompt (counting): not renamed or removed
}

export interface Selection {
  label: number;
  point: number;
}

/** The part of the state a draft keeps and Undo restores. */
interface Snapshot {
  labels: Label[];
  active: number;
}

export interface LabelPayload {
  label: string;
  points: Point[];
  not_present: boolean;
  seconds: number;
}

const UNDO_DEPTH = 500;

const clampPercent = (value: number) => Math.min(100, Math.max(0, value));

/** The key two labels share when they name the same thing (as the server folds them). */
export function labelKey(name: string): string {
  return name.normalize("NFKC").toLowerCase().split(/\s+/).filter(Boolean).join(" ");
}

export class PointsModel {
  labels: Label[] = [];
  active = 0;
  selected: Selection | null = null;
  private history: string[] = [];

  constructor(
    readonly counting: boolean,
    prompts: string[],
    readonly maxPoints: number,
    readonly maxLabels: number,
  ) {
    const fixed = counting && prompts.length > 0;
    this.labels = fixed ? prompts.map((name) => this.blank(name, true)) : [this.blank("", false)];
  }

  private blank(name: string, fixed: boolean): Label {
    return { name, points: [], notPresent: false, seconds: 0, fixed };
  }

  get current(): Label {
    return this.labels[this.active];
  }

  get canUndo(): boolean {
    return this.history.length > 0;
  }

  /** Remember the state before a change, so Undo brings it back. */
  private remember(): void {
    const snapshot: Snapshot = { labels: this.labels, active: this.active };
    this.history.push(JSON.stringify(snapshot));
    if (this.history.length > UNDO_DEPTH) {
      this.history.shift();
    }
  }

  undo(): boolean {
    const last = this.history.pop();
    if (last === undefined) {
      return false;
    }
    const seconds = this.labels.map((label) => label.seconds);
    const snapshot = JSON.parse(last) as Snapshot;
    this.labels = snapshot.labels;
    // Time spent is not undone: it was spent.
    this.labels.forEach((label, i) => (label.seconds = Math.max(label.seconds, seconds[i] ?? 0)));
    this.active = Math.min(snapshot.active, this.labels.length - 1);
    this.selected = null;
    return true;
  }

  /** Add a point to the active label; returns an error message when refused. */
  addPoint(point: Point): string | null {
    const label = this.current;
    if (label.points.length >= this.maxPoints) {
      return `A label holds at most ${this.maxPoints} points.`;
    }
    this.remember();
    label.notPresent = false;
    label.points.push({ x: clampPercent(point.x), y: clampPercent(point.y) });
    this.selected = { label: this.active, point: label.points.length - 1 };
    return null;
  }

  /** Start moving a point (one undo step for the whole drag). */
  beginMove(): void {
    this.remember();
  }

  movePoint(at: Selection, point: Point): void {
    const target = this.labels[at.label]?.points[at.point];
    if (target) {
      target.x = clampPercent(point.x);
      target.y = clampPercent(point.y);
    }
  }

  select(at: Selection | null): void {
    this.selected = at;
    if (at !== null) {
      this.active = at.label;
    }
  }

  removeSelected(): boolean {
    const at = this.selected;
    if (at === null || !this.labels[at.label]?.points[at.point]) {
      return false;
    }
    this.remember();
    this.labels[at.label].points.splice(at.point, 1);
    this.selected = null;
    return true;
  }

  /** Mark the active label absent from the image (its points, if any, go). */
  markNotPresent(): string | null {
    const label = this.current;
    if (!label.name.trim()) {
      return "Type the label first: say what is not present.";
    }
    this.remember();
    label.points = [];
    label.notPresent = true;
    this.selected = null;
    return null;
  }

  rename(name: string): void {
    if (!this.current.fixed) {
      this.current.name = name;
    }
  }

  activate(index: number): void {
    if (index >= 0 && index < this.labels.length) {
      this.active = index;
      this.selected = null;
    }
  }

  isBlank(label: Label): boolean {
    return !label.name.trim() && label.points.length === 0 && !label.notPresent;
  }

  isAnswered(label: Label): boolean {
    return label.points.length > 0 || label.notPresent;
  }

  /** Counting: the next prompt still unanswered (else the next one). Pointing: a new
   * label, unless the active one is still blank. Returns an error message when refused. */
  nextLabel(): string | null {
    if (this.counting) {
      const n = this.labels.length;
      for (let step = 1; step < n; step++) {
        const candidate = (this.active + step) % n;
        if (!this.isAnswered(this.labels[candidate])) {
          this.activate(candidate);
          return null;
        }
      }
      this.activate((this.active + 1) % n);
      return null;
    }
    if (this.isBlank(this.current)) {
      return null;
    }
    if (this.labels.length >= this.maxLabels) {
      return `An image takes at most ${this.maxLabels} labels.`;
    }
    this.remember();
    this.labels.push(this.blank("", false));
    this.activate(this.labels.length - 1);
    return null;
  }

  removeLabel(index: number): void {
    const label = this.labels[index];
    if (!label || label.fixed) {
      return;
    }
    this.remember();
    this.labels.splice(index, 1);
    if (this.labels.length === 0) {
      this.labels.push(this.blank("", false));
    }
    this.active = Math.min(this.active, this.labels.length - 1);
    this.selected = null;
  }

  tick(seconds: number): void {
    this.current.seconds += seconds;
  }

  /** What is wrong before submitting (and which label), or null when ready. */
  problem(): { message: string; label: number } | null {
    const used = this.labels.map((label, index) => ({ label, index })).filter(({ label }) => !this.isBlank(label) || label.fixed);
    if (used.length === 0) {
      return { message: "Name something and point at it (or press Skip).", label: 0 };
    }
    const seen = new Map<string, number>();
    for (const { label, index } of used) {
      if (!label.name.trim()) {
        return { message: "Give every label a name in the Label box.", label: index };
      }
      if (!this.isAnswered(label)) {
        return {
          message: `“${label.name}” has no points: point at every instance, or press Not present.`,
          label: index,
        };
      }
      const key = labelKey(label.name);
      if (seen.has(key)) {
        return { message: `“${label.name}” is listed twice; use one label for all of them.`, label: index };
      }
      seen.set(key, index);
    }
    return null;
  }

  payload(): LabelPayload[] {
    return this.labels
      .filter((label) => !this.isBlank(label) || label.fixed)
      .map((label) => ({
        label: label.name.trim(),
        points: label.points.map((p) => ({ x: p.x, y: p.y })),
        not_present: label.notPresent,
        seconds: Math.round(label.seconds * 10) / 10,
      }));
  }

  pointTotal(): number {
    return this.labels.reduce((sum, label) => sum + label.points.length, 0);
  }

  toDraft(): Snapshot {
    return { labels: this.labels, active: this.active };
  }

  /** Take back a saved draft when it fits this page (the same prompts, sane values). */
  restore(draft: unknown): boolean {
    const snapshot = draft as Partial<Snapshot> | null;
    if (!snapshot || !Array.isArray(snapshot.labels) || snapshot.labels.length === 0) {
      return false;
    }
    const labels = snapshot.labels.filter(
      (label): label is Label =>
        typeof label?.name === "string" &&
        Array.isArray(label.points) &&
        label.points.every((p) => Number.isFinite(p?.x) && Number.isFinite(p?.y)),
    );
    const prompts = this.labels.filter((label) => label.fixed).map((label) => label.name);
    const restoredPrompts = labels.filter((label) => label.fixed).map((label) => label.name);
    if (labels.length !== snapshot.labels.length || prompts.join("\n") !== restoredPrompts.join("\n")) {
      return false;
    }
    this.labels = labels.map((label) => ({
      ...label,
      notPresent: Boolean(label.notPresent),
      seconds: Number(label.seconds) || 0,
    }));
    this.active = Math.min(Math.max(0, Number(snapshot.active) || 0), this.labels.length - 1);
    this.selected = null;
    return true;
  }
}
