// The points page: wires the model (labels, points, undo) to the markup of
// annotator_app/templates/points/annotate.html (data-* hooks, no inline code): the
// viewport, the label list, the buttons, the keyboard, the draft kept in localStorage,
// the heartbeat, Skip and the idempotent submit.
import { newId } from "../capture/store";
import { UploadRefusedError, uploadWithRetry } from "../capture/uploader";
import { apiFetch } from "../csrf";
import { type Label, PointsModel } from "./model";
import { Viewport } from "./viewport";

const PALETTE = 10; // label colours: CSS classes pc-0 .. pc-9
const HEARTBEAT_MS = 60_000;
const DRAFT_PREFIX = "pixmo-points-draft-";
const DRAFT_MAX_AGE_MS = 14 * 24 * 3600 * 1000;
const CROSS_STEP = 1; // percent per arrow key; Shift: ten times that

interface Draft {
  savedAt: number;
  key: string;
  state: unknown;
}

interface AnnotationOut {
  id: number;
  labels: { label: string; count: number }[];
}

function need<T extends Element>(root: ParentNode, selector: string): T {
  const found = root.querySelector<T>(selector);
  if (found === null) {
    throw new Error(`points page: ${selector} is missing`);
  }
  return found;
}

function isTyping(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable='true']") !== null;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export class PointsPage {
  private readonly assignmentId: number;
  private readonly submitUrl: string;
  private readonly heartbeatUrl: string;
  private readonly skipUrl: string;
  private readonly model: PointsModel;
  private readonly viewport: Viewport;
  private readonly ui;
  private readonly draftKey: string;
  private idempotencyKey = newId();
  private cross = { x: 50, y: 50 };
  private activeSeconds = 0;
  private busy = false;
  private done = false;
  private dragging: { label: number; point: number } | null = null;

  constructor(private readonly root: HTMLElement) {
    this.assignmentId = Number(root.dataset.assignmentId);
    this.submitUrl = root.dataset.submitUrl ?? "";
    this.heartbeatUrl = root.dataset.heartbeatUrl ?? "";
    this.skipUrl = root.dataset.skipUrl ?? "";
    this.draftKey = `${DRAFT_PREFIX}${this.assignmentId}`;
    const promptsEl = document.getElementById("points-prompts");
    const prompts = promptsEl?.textContent ? (JSON.parse(promptsEl.textContent) as string[]) : [];
    this.model = new PointsModel(
      root.dataset.mode === "counting",
      prompts,
      Number(root.dataset.maxPoints) || 200,
      Number(root.dataset.maxLabels) || 50,
    );
    this.ui = {
      layer: need<HTMLElement>(root, "[data-layer]"),
      cross: need<HTMLElement>(root, "[data-cross]"),
      zoomLevel: need<HTMLElement>(root, "[data-zoom-level]"),
      alert: need<HTMLElement>(root, "[data-alert]"),
      editor: need<HTMLElement>(root, "[data-editor]"),
      labelInput: need<HTMLInputElement>(root, "[data-label-input]"),
      current: need<HTMLElement>(root, "[data-current]"),
      list: need<HTMLOListElement>(root, "[data-label-list]"),
      next: need<HTMLButtonElement>(root, "[data-action='next']"),
      notPresent: need<HTMLButtonElement>(root, "[data-action='not-present']"),
      undo: need<HTMLButtonElement>(root, "[data-action='undo']"),
      removePoint: need<HTMLButtonElement>(root, "[data-action='remove-point']"),
      submit: need<HTMLButtonElement>(root, "[data-action='submit']"),
      skip: need<HTMLButtonElement>(root, "[data-action='skip']"),
      skipForm: need<HTMLFormElement>(root, "[data-skip-form]"),
      skipCancel: need<HTMLButtonElement>(root, "[data-action='skip-cancel']"),
      outcome: need<HTMLElement>(root, "[data-outcome]"),
      status: need<HTMLElement>(root, "[data-status]"),
    };
    const image = need<HTMLImageElement>(root, "[data-image]");
    image.addEventListener("error", () =>
      this.showAlert("The image did not load. Reload the page, or press Skip and say why."),
    );
    this.viewport = new Viewport(need<HTMLElement>(root, "[data-viewport]"), image, {
      tap: (point) => this.place(point),
      markerDrag: (marker, point, first) => this.drag(marker, point, first),
      markerDrop: () => {
        this.dragging = null;
        this.changed();
      },
      markerTap: (marker) => this.selectMarker(marker),
      moved: () => this.positionMarkers(),
    });
  }

  start(): void {
    this.restoreDraft();
    this.bindButtons();
    document.addEventListener("keydown", (event) => this.onKey(event));
    this.viewport.element.addEventListener("keydown", (event) => this.onViewportKey(event));
    window.setInterval(() => this.tick(), 1000);
    window.setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.sweepDrafts();
    this.render();
    if (!this.model.counting) {
      this.ui.labelInput.focus();
    }
  }

  // --- actions ----------------------------------------------------------------------------

  private bindButtons(): void {
    const { ui } = this;
    this.root.querySelector("[data-zoom='in']")?.addEventListener("click", () => this.viewport.zoomBy(1.5));
    this.root.querySelector("[data-zoom='out']")?.addEventListener("click", () => this.viewport.zoomBy(1 / 1.5));
    this.root.querySelector("[data-zoom='fit']")?.addEventListener("click", () => this.viewport.reset());
    ui.next.addEventListener("click", () => this.nextLabel());
    ui.notPresent.addEventListener("click", () => this.notPresent());
    ui.undo.addEventListener("click", () => this.undo());
    ui.removePoint.addEventListener("click", () => this.removePoint());
    ui.submit.addEventListener("click", () => void this.submit());
    ui.skip.addEventListener("click", () => this.openSkip());
    ui.skipCancel.addEventListener("click", () => this.closeSkip());
    ui.skipForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.skip();
    });
    ui.labelInput.addEventListener("input", () => {
      this.model.rename(ui.labelInput.value);
      this.changed(false);
    });
    ui.list.addEventListener("click", (event) => {
      const target = event.target as HTMLElement;
      const row = target.closest<HTMLElement>("[data-label-index]");
      if (!row) {
        return;
      }
      const index = Number(row.dataset.labelIndex);
      if (target.closest("[data-label-delete]")) {
        this.model.removeLabel(index);
      } else {
        this.model.activate(index);
      }
      this.changed();
    });
  }

  private place(point: { x: number; y: number }): void {
    if (this.done) {
      return;
    }
    const refused = this.model.addPoint(point);
    if (refused) {
      this.showAlert(refused);
    } else {
      this.cross = { ...point };
    }
    this.changed();
  }

  private drag(marker: HTMLElement, point: { x: number; y: number }, first: boolean): void {
    const at = { label: Number(marker.dataset.label), point: Number(marker.dataset.point) };
    if (first) {
      this.model.beginMove();
      this.model.select(at);
      this.dragging = at;
    }
    this.model.movePoint(at, point);
    const view = this.viewport.toView(this.model.labels[at.label].points[at.point]);
    marker.style.left = `${view.left}px`;
    marker.style.top = `${view.top}px`;
    marker.classList.add("selected");
  }

  private selectMarker(marker: HTMLElement): void {
    this.model.select({ label: Number(marker.dataset.label), point: Number(marker.dataset.point) });
    this.changed(false);
  }

  private nextLabel(): void {
    const refused = this.model.nextLabel();
    if (refused) {
      this.showAlert(refused);
    }
    this.changed();
    if (this.model.counting) {
      this.viewport.element.focus();
    } else {
      this.ui.labelInput.focus();
    }
  }

  private notPresent(): void {
    const refused = this.model.markNotPresent();
    if (refused) {
      this.showAlert(refused);
      this.ui.labelInput.focus();
      this.render();
      return;
    }
    this.nextLabel();
  }

  private undo(): void {
    if (this.model.undo()) {
      this.changed();
    }
  }

  private removePoint(): void {
    if (this.model.removeSelected()) {
      this.changed();
    }
  }

  // --- keyboard ---------------------------------------------------------------------------

  private onKey(event: KeyboardEvent): void {
    if (this.done || event.altKey || event.metaKey) {
      return;
    }
    const ctrl = event.ctrlKey;
    if (ctrl && event.key === "Enter") {
      event.preventDefault();
      void this.submit();
      return;
    }
    if (event.target === this.ui.labelInput && (event.key === "Enter" || event.key === "Escape")) {
      event.preventDefault();
      this.viewport.element.focus();
      return;
    }
    if (isTyping(event.target) || !this.ui.skipForm.hidden) {
      return;
    }
    const key = event.key.toLowerCase();
    const action: Record<string, () => void> = {
      n: () => this.nextLabel(),
      u: () => this.undo(),
      x: () => this.notPresent(),
      l: () => this.ui.labelInput.focus(),
    };
    if (ctrl && key === "z") {
      event.preventDefault();
      this.undo();
    } else if (!ctrl && action[key]) {
      event.preventDefault();
      action[key]();
    } else if (!ctrl && (event.key === "Delete" || event.key === "Backspace")) {
      event.preventDefault();
      this.removePoint();
    }
  }

  private onViewportKey(event: KeyboardEvent): void {
    if (this.done || event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    const step = event.shiftKey ? CROSS_STEP * 10 : CROSS_STEP;
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const move = moves[event.key];
    if (move) {
      event.preventDefault();
      this.cross.x = Math.min(100, Math.max(0, this.cross.x + move[0]));
      this.cross.y = Math.min(100, Math.max(0, this.cross.y + move[1]));
      this.viewport.reveal(this.cross);
      this.positionMarkers();
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      event.stopPropagation();
      this.place({ ...this.cross });
    } else if (event.key === "+" || event.key === "=") {
      this.viewport.zoomBy(1.5, this.crossInView());
    } else if (event.key === "-") {
      this.viewport.zoomBy(1 / 1.5, this.crossInView());
    } else if (event.key === "0") {
      this.viewport.reset();
    }
  }

  private crossInView(): { x: number; y: number } {
    const { left, top } = this.viewport.toView(this.cross);
    return { x: left, y: top };
  }

  // --- time, lease, drafts ----------------------------------------------------------------

  private tick(): void {
    if (this.done || document.visibilityState !== "visible") {
      return;
    }
    this.activeSeconds += 1;
    this.model.tick(1);
    if (this.activeSeconds % 10 === 0) {
      this.saveDraft();
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.done || this.busy || !this.heartbeatUrl) {
      return;
    }
    const body = new FormData();
    body.append("active_seconds", String(this.activeSeconds));
    try {
      await apiFetch(this.heartbeatUrl, { method: "POST", body });
    } catch {
      // offline: the submit still works on an expired lease while its slot is free
    }
  }

  private saveDraft(): void {
    if (this.done) {
      return;
    }
    const draft: Draft = { savedAt: Date.now(), key: this.idempotencyKey, state: this.model.toDraft() };
    try {
      localStorage.setItem(this.draftKey, JSON.stringify(draft));
    } catch {
      // storage full or disabled: the page still works, a reload would lose the points
    }
  }

  private restoreDraft(): void {
    let draft: Draft | null = null;
    try {
      draft = JSON.parse(localStorage.getItem(this.draftKey) ?? "null") as Draft | null;
    } catch {
      draft = null;
    }
    if (draft && this.model.restore(draft.state)) {
      this.idempotencyKey = typeof draft.key === "string" && draft.key ? draft.key : this.idempotencyKey;
      const total = this.model.pointTotal();
      if (total > 0 || this.model.labels.some((label) => label.notPresent)) {
        this.showStatus(`Restored your unsubmitted work on this image (${plural(total, "point")}).`);
      }
    }
  }

  private sweepDrafts(): void {
    try {
      for (let i = localStorage.length - 1; i >= 0; i--) {
        const key = localStorage.key(i);
        if (!key?.startsWith(DRAFT_PREFIX) || key === this.draftKey) {
          continue;
        }
        const saved = JSON.parse(localStorage.getItem(key) ?? "null") as Draft | null;
        if (!saved || Date.now() - saved.savedAt > DRAFT_MAX_AGE_MS) {
          localStorage.removeItem(key);
        }
      }
    } catch {
      // nothing to sweep
    }
  }

  // --- submit and skip --------------------------------------------------------------------

  private async submit(): Promise<void> {
    if (this.busy || this.done) {
      return;
    }
    const problem = this.model.problem();
    if (problem) {
      this.model.activate(problem.label);
      this.render();
      this.showAlert(problem.message);
      return;
    }
    this.busy = true;
    this.clearAlert();
    this.render();
    this.saveDraft();
    this.showStatus("Submitting your points…");
    const body = JSON.stringify({
      assignment: this.assignmentId,
      labels: this.model.payload(),
      active_seconds: this.activeSeconds,
    });
    try {
      const result = await uploadWithRetry<AnnotationOut>(this.submitUrl, () => body, this.idempotencyKey, {
        headers: { "Content-Type": "application/json" },
        onRetry: (attempt, delayMs, reason) =>
          this.showStatus(
            `Attempt ${attempt} failed (${reason}); trying again in ${Math.ceil(delayMs / 1000)} s. ` +
              "Your points are kept in this browser.",
          ),
      });
      this.finish(
        `Points submitted: ${plural(result.labels.length, "label")}, ` +
          `${plural(result.labels.reduce((n, label) => n + label.count, 0), "point")}.`,
      );
    } catch (error) {
      this.busy = false;
      this.ui.outcome.hidden = true;
      const message = error instanceof Error ? error.message : String(error);
      this.showAlert(
        error instanceof UploadRefusedError
          ? `The server refused these points: ${message}`
          : `Submitting failed: ${message}. Your points are kept in this browser; press Submit points to try again.`,
      );
      this.render();
    }
  }

  private openSkip(): void {
    this.ui.skipForm.hidden = false;
    this.ui.skipForm.querySelector<HTMLInputElement>("input[type='radio']")?.focus();
  }

  private closeSkip(): void {
    this.ui.skipForm.hidden = true;
    this.ui.skip.focus();
  }

  private async skip(): Promise<void> {
    const form = new FormData(this.ui.skipForm);
    const choice = String(form.get("skip-reason") ?? "");
    const other = String(form.get("skip-other") ?? "").trim();
    const reason = choice === "other" ? other : choice;
    if (!reason) {
      this.showAlert("Say why you skip this image: choose a reason or write one.");
      return;
    }
    this.busy = true;
    try {
      const response = await apiFetch(this.skipUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason }),
      });
      if (!response.ok) {
        const body = (await response.json().catch(() => ({}))) as { detail?: string };
        throw new Error(body.detail ?? `the server answered ${response.status}`);
      }
      this.finish("Image skipped.");
    } catch (error) {
      this.busy = false;
      this.showAlert(`Skipping failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private finish(message: string): void {
    this.done = true;
    this.busy = false;
    try {
      localStorage.removeItem(this.draftKey);
    } catch {
      // nothing stored
    }
    this.ui.editor.hidden = true;
    this.clearAlert();
    this.showStatus(message);
    this.ui.outcome.querySelector("a")?.focus();
  }

  // --- display ----------------------------------------------------------------------------

  private changed(save = true): void {
    if (save) {
      this.saveDraft();
    }
    this.render();
  }

  private describe(label: Label): string {
    if (label.notPresent) {
      return "not present";
    }
    return label.points.length ? plural(label.points.length, "point") : "no points yet";
  }

  private render(): void {
    const { model, ui } = this;
    const current = model.current;
    if (document.activeElement !== ui.labelInput || model.counting) {
      ui.labelInput.value = current.name;
    }
    ui.labelInput.classList.remove(...Array.from({ length: PALETTE }, (_, i) => `pc-${i}`));
    ui.labelInput.classList.add(`pc-${model.active % PALETTE}`);
    const name = current.name.trim() || "(unnamed label)";
    ui.current.textContent = `Label ${model.active + 1} of ${model.labels.length}: ${name}, ${this.describe(current)}`;
    ui.undo.disabled = !model.canUndo || this.done;
    ui.removePoint.disabled = model.selected === null;
    ui.submit.disabled = this.busy || this.done;
    ui.next.disabled = this.done;
    ui.notPresent.disabled = this.done;
    this.renderList();
    this.renderMarkers();
  }

  private renderList(): void {
    const { model, ui } = this;
    const rows = model.labels.map((label, index) => {
      const row = document.createElement("li");
      row.className = `label-row pc-${index % PALETTE}`;
      row.dataset.labelIndex = String(index);
      row.classList.toggle("active", index === model.active);
      row.classList.toggle("not-present", label.notPresent);
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = "label-pick";
      pick.setAttribute("aria-pressed", String(index === model.active));
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.setAttribute("aria-hidden", "true");
      const text = document.createElement("span");
      text.className = "label-name";
      text.textContent = label.name.trim() || "(unnamed)";
      pick.append(swatch, text);
      const count = document.createElement("span");
      count.className = "label-count";
      count.dataset.count = String(label.points.length);
      count.textContent = this.describe(label);
      row.append(pick, count);
      if (!label.fixed) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "label-delete";
        remove.dataset.labelDelete = "";
        remove.setAttribute("aria-label", `Delete “${label.name.trim() || "unnamed"}”`);
        remove.textContent = "×";
        row.append(remove);
      }
      return row;
    });
    ui.list.replaceChildren(...rows);
  }

  private renderMarkers(): void {
    if (this.dragging) {
      return;
    }
    const { model } = this;
    const markers: HTMLElement[] = [];
    model.labels.forEach((label, li) => {
      label.points.forEach((_, pi) => {
        const marker = document.createElement("div");
        marker.className = `marker pc-${li % PALETTE}`;
        marker.dataset.marker = "";
        marker.dataset.label = String(li);
        marker.dataset.point = String(pi);
        marker.textContent = String(pi + 1);
        marker.classList.toggle("inactive", li !== model.active);
        marker.classList.toggle("selected", model.selected?.label === li && model.selected.point === pi);
        markers.push(marker);
      });
    });
    this.ui.layer.replaceChildren(...markers);
    this.positionMarkers();
  }

  private positionMarkers(): void {
    if (!this.ui || !this.viewport) {
      return; // the viewport reports its first layout before the page is built
    }
    for (const marker of this.ui.layer.children as HTMLCollectionOf<HTMLElement>) {
      const point = this.model.labels[Number(marker.dataset.label)]?.points[Number(marker.dataset.point)];
      if (point) {
        const { left, top } = this.viewport.toView(point);
        marker.style.left = `${left}px`;
        marker.style.top = `${top}px`;
      }
    }
    const { left, top } = this.viewport.toView(this.cross);
    this.ui.cross.style.left = `${left}px`;
    this.ui.cross.style.top = `${top}px`;
    this.ui.zoomLevel.textContent = `${Math.round(this.viewport.zoom * 100)} %`;
  }

  private showAlert(text: string): void {
    this.ui.alert.textContent = text;
    this.ui.alert.hidden = false;
  }

  private clearAlert(): void {
    this.ui.alert.textContent = "";
    this.ui.alert.hidden = true;
  }

  private showStatus(text: string): void {
    this.ui.outcome.hidden = false;
    this.ui.status.textContent = text;
  }
}
