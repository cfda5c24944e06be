// P12 live guidance while speaking: send the take's new audio to the live endpoint about
// once a second, show the live transcript and tick off the seven guiding questions.
//
// The capture page uses three calls and one container (section[data-live], rendered
// here): `start(takeKey)` when recording starts, `onChunk(blob, elapsedMs)` for every
// MediaRecorder chunk, `stop()` when it stops. Everything here is guidance: any failure
// shows "Live transcript paused" in the container and never reaches the recording,
// its local storage or the submit (no call here throws to the page).
import { apiFetch } from "./csrf";

export interface LiveQuestion {
  key: string;
  question: string;
  covered: boolean;
  evidence: string[];
}

export interface LiveView {
  take: string;
  text: string;
  committed: string;
  tentative: string;
  coverage: { questions: LiveQuestion[]; covered: number; total: number };
  received_seconds: number;
  heard_seconds: number;
  shown_seconds: number;
  lag_seconds: number;
  paused: boolean;
  paused_reason: string;
}

const RETRY_MIN_MS = 2000;
const RETRY_MAX_MS = 15_000;
// After Stop: ask for the last steps this often, this many times at most.
const FINISH_POLL_MS = 1500;
const FINISH_POLLS = 12;
const MAX_CONFLICTS = 3;

function clockOf(ms: number): string {
  const total = Math.floor(ms / 1000);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** The live guidance of one capture page; null from fromPage() when the campaign has it off. */
export class LiveGuide {
  private take = "";
  private generation = 0;
  private blobs: Blob[] = [];
  private totalBytes = 0;
  private sentBytes = 0;
  private elapsedMs = 0;
  private finalPending = false;
  private inFlight = false;
  private disabled = false;
  private retryAt = 0;
  private retryMs = RETRY_MIN_MS;
  private conflicts = 0;
  private openQuestions: string[];
  private readonly items = new Map<string, HTMLLIElement>();
  private readonly status: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly committed: HTMLElement;
  private readonly tentative: HTMLElement;

  static fromPage(root: ParentNode = document): LiveGuide | null {
    const container = root.querySelector<HTMLElement>("[data-live]");
    if (container === null || !container.dataset.liveUrl) {
      return null;
    }
    let questions: [string, string][] = [];
    try {
      questions = JSON.parse(container.dataset.liveQuestions ?? "[]") as [string, string][];
    } catch {
      questions = [];
    }
    const minMs = Number(container.dataset.minSeconds ?? "0") * 1000;
    return new LiveGuide(container, container.dataset.liveUrl, questions, minMs);
  }

  constructor(
    private readonly container: HTMLElement,
    private readonly url: string,
    questions: [string, string][],
    private readonly minMs: number,
  ) {
    const doc = container.ownerDocument;
    const heading = doc.createElement("h2");
    heading.textContent = "Live guidance";
    const list = doc.createElement("ul");
    list.className = "live-checklist";
    list.setAttribute("aria-label", "Guiding questions covered so far");
    for (const [key, text] of questions) {
      const item = doc.createElement("li");
      item.dataset.liveKey = key;
      item.dataset.covered = "false";
      item.textContent = text;
      list.append(item);
      this.items.set(key, item);
    }
    this.openQuestions = questions.map(([, text]) => text);
    this.status = doc.createElement("p");
    this.status.className = "live-status";
    this.status.dataset.liveStatus = "";
    this.status.setAttribute("aria-live", "polite");
    this.status.textContent = "The live transcript starts when you start recording.";
    this.hint = doc.createElement("p");
    this.hint.className = "live-hint";
    this.hint.dataset.liveHint = "";
    this.hint.hidden = true;
    const transcript = doc.createElement("p");
    transcript.className = "live-transcript";
    transcript.dataset.liveTranscript = "";
    this.committed = doc.createElement("span");
    this.tentative = doc.createElement("span");
    this.tentative.className = "tentative";
    transcript.append(this.committed, " ", this.tentative);
    container.replaceChildren(heading, list, this.status, this.hint, transcript);
  }

  /** A new take starts (its key is the recording's idempotency key). */
  start(takeKey: string): void {
    this.generation += 1;
    this.take = takeKey;
    this.blobs = [];
    this.totalBytes = 0;
    this.sentBytes = 0;
    this.elapsedMs = 0;
    this.finalPending = false;
    this.inFlight = false;
    this.disabled = false;
    this.retryAt = 0;
    this.retryMs = RETRY_MIN_MS;
    this.conflicts = 0;
    this.committed.textContent = "";
    this.tentative.textContent = "";
    this.hint.hidden = true;
    for (const item of this.items.values()) {
      this.mark(item, false, []);
    }
    this.openQuestions = [...this.items.values()].map((item) => item.textContent ?? "");
    this.setStatus("Live transcript: listening…", false);
  }

  /** One MediaRecorder chunk of the current take, `elapsedMs` into it. */
  onChunk(blob: Blob, elapsedMs: number): void {
    if (this.take === "") {
      return;
    }
    this.blobs.push(blob);
    this.totalBytes += blob.size;
    this.elapsedMs = Math.max(this.elapsedMs, elapsedMs);
    this.showHint();
    void this.pump();
  }

  /** The take stopped: send what is left, then fetch the last text for a little while. */
  stop(): void {
    if (this.take === "" || this.disabled) {
      return;
    }
    this.finalPending = true;
    void this.pump();
    void this.finish(this.generation);
  }

  // --- sending --------------------------------------------------------------------------

  private async pump(): Promise<void> {
    if (this.inFlight || this.disabled || this.take === "" || Date.now() < this.retryAt) {
      return;
    }
    if (this.sentBytes >= this.totalBytes && !this.finalPending) {
      return;
    }
    const generation = this.generation;
    const offset = this.sentBytes;
    const audio = new Blob(this.blobs).slice(offset);
    const final = this.finalPending;
    const body = new FormData();
    body.append("take", this.take);
    body.append("offset", String(offset));
    body.append("received_ms", String(Math.round(this.elapsedMs)));
    body.append("final", final ? "true" : "false");
    body.append("audio", audio, "live.webm");
    this.inFlight = true;
    try {
      const response = await apiFetch(this.url, { method: "POST", body });
      if (generation !== this.generation) {
        return; // an answer about a take that was replaced meanwhile
      }
      await this.onAnswer(response, offset + audio.size, final);
    } catch (error) {
      if (generation === this.generation) {
        this.pause(`the connection failed (${error instanceof Error ? error.message : String(error)})`);
      }
    } finally {
      if (generation === this.generation) {
        this.inFlight = false;
        if (!this.disabled && Date.now() >= this.retryAt && this.sentBytes < this.totalBytes) {
          void this.pump();
        }
      }
    }
  }

  private async onAnswer(response: Response, sentTo: number, final: boolean): Promise<void> {
    const data = (await response.json().catch(() => ({}))) as Partial<LiveView> & {
      detail?: string;
      expected_offset?: number;
    };
    if (response.ok) {
      this.sentBytes = sentTo;
      this.conflicts = 0;
      this.retryMs = RETRY_MIN_MS;
      if (final && this.sentBytes >= this.totalBytes) {
        this.finalPending = false;
      }
      this.render(data as LiveView);
      return;
    }
    if (response.status === 409 && typeof data.expected_offset === "number" && this.conflicts < MAX_CONFLICTS) {
      this.conflicts += 1;
      this.sentBytes = Math.min(data.expected_offset, this.totalBytes);
      return; // resent from where the server is
    }
    if (response.status === 413 || response.status === 404 || response.status === 409) {
      this.disabled = true; // this take will not get live text; recording goes on
    }
    this.pause(data.detail ?? `the server answered ${response.status}`);
  }

  private pause(reason: string): void {
    this.retryAt = Date.now() + this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.setStatus(`Live transcript paused: ${reason}. Your recording is not affected.`, true);
  }

  private async finish(generation: number): Promise<void> {
    for (let i = 0; i < FINISH_POLLS; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, FINISH_POLL_MS));
      if (generation !== this.generation || this.disabled) {
        return;
      }
      if (this.finalPending) {
        void this.pump();
        continue;
      }
      try {
        const response = await apiFetch(`${this.url}?take=${encodeURIComponent(this.take)}`);
        if (!response.ok || generation !== this.generation) {
          continue;
        }
        const view = (await response.json()) as LiveView;
        this.render(view);
        if (view.tentative === "" && view.heard_seconds >= view.received_seconds - 0.5) {
          return;
        }
      } catch {
        // offline for a moment: the recording is unaffected, ask again
      }
    }
  }

  // --- display --------------------------------------------------------------------------

  private render(view: LiveView): void {
    this.committed.textContent = view.committed ?? "";
    this.tentative.textContent = view.tentative ?? "";
    const open: string[] = [];
    for (const question of view.coverage?.questions ?? []) {
      const item = this.items.get(question.key);
      if (item !== undefined) {
        this.mark(item, question.covered, question.evidence);
      }
      if (!question.covered) {
        open.push(question.question);
      }
    }
    this.openQuestions = open;
    if (view.paused) {
      this.setStatus(`Live transcript paused: ${view.paused_reason}. Your recording is not affected.`, true);
    } else {
      const covered = view.coverage?.covered ?? 0;
      const total = view.coverage?.total ?? this.items.size;
      this.setStatus(`Live transcript (guidance only): ${covered} of ${total} questions covered.`, false);
    }
    this.showHint();
  }

  private mark(item: HTMLLIElement, covered: boolean, evidence: string[]): void {
    item.classList.toggle("covered", covered);
    item.dataset.covered = String(covered);
    item.title = covered ? `Covered: ${evidence.join(", ")}` : "Not covered yet";
  }

  private showHint(): void {
    if (this.elapsedMs < this.minMs || this.openQuestions.length === 0) {
      this.hint.hidden = true;
      return;
    }
    this.hint.textContent =
      `Minimum of ${clockOf(this.minMs)} reached. Still open: ${this.openQuestions.join(" ")}`;
    this.hint.hidden = false;
  }

  private setStatus(text: string, paused: boolean): void {
    this.status.textContent = text;
    this.status.classList.toggle("paused", paused);
    this.container.dataset.livePaused = String(paused);
  }
}
