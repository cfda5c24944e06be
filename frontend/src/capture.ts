// The capture page: record a spoken description of the image, keep every chunk in
// IndexedDB while recording, upload with retries, then follow the processing status.
// Markup: annotator_app/templates/captions/capture.html (data-* hooks, no inline code).
import { MemoryStore, type TakeStore } from "./capture/memory";
import { MicError, Recorder } from "./capture/recorder";
import { CaptureStore, newId, type Session } from "./capture/store";
import { UploadRefusedError, uploadWithRetry } from "./capture/uploader";
import { postSkip, skipReason } from "./capture/skip";
import { showStages, type ProgressOut } from "./capture/stages";
import { setupZoom } from "./capture/zoom";
import { apiFetch } from "./csrf";
import { LiveGuide } from "./live";

type Phase =
  | "idle"
  | "starting"
  | "recording"
  | "paused"
  | "stopping"
  | "recorded"
  | "uploading"
  | "submitted"
  | "skipping"
  | "skipped";

interface RecordingOut {
  id: number;
  url: string;
  status: string;
  status_label: string;
  failure_reason: string;
  transcript: string | null;
  caption: string | null;
  processing_note?: string | null;
  progress?: ProgressOut;
}

const FINAL_STATUSES = new Set(["done", "failed", "flagged"]);
// The lease is renewed this often while the page is open and nothing is submitted yet.
const HEARTBEAT_MS = 60_000;
const STALE_TAKE_MS = 14 * 24 * 3600 * 1000;

export function clock(ms: number): string {
  const total = Math.floor(ms / 1000);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

function need<T extends Element>(root: ParentNode, selector: string): T {
  const found = root.querySelector<T>(selector);
  if (found === null) {
    throw new Error(`capture page: ${selector} is missing`);
  }
  return found;
}

/** Time the page was visible, for the assignment's active_seconds. */
class ActiveClock {
  private totalMs = 0;
  private since: number | null = document.visibilityState === "visible" ? performance.now() : null;

  constructor() {
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.since = performance.now();
      } else if (this.since !== null) {
        this.totalMs += performance.now() - this.since;
        this.since = null;
      }
    });
  }

  seconds(): number {
    const running = this.since === null ? 0 : performance.now() - this.since;
    return Math.round((this.totalMs + running) / 1000);
  }
}

class CapturePage {
  private readonly assignmentId: number;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly uploadUrl: string;
  private readonly heartbeatUrl: string;
  private readonly skipUrl: string;
  private readonly ui;
  private phase: Phase = "idle";
  private store: TakeStore = new MemoryStore();
  private take: Session | null = null;
  private recorder: Recorder | null = null;
  private writes: Promise<void> = Promise.resolve();
  private ticker = 0;
  private playbackUrl = "";
  private readonly active = new ActiveClock();
  // P12 live guidance (frontend/src/live.ts); null when the campaign has it off.
  private readonly live: LiveGuide | null;

  constructor(root: HTMLElement) {
    this.assignmentId = Number(root.dataset.assignmentId);
    this.minMs = Number(root.dataset.minSeconds) * 1000;
    this.maxMs = Number(root.dataset.maxSeconds) * 1000;
    this.uploadUrl = root.dataset.uploadUrl ?? "";
    this.heartbeatUrl = root.dataset.heartbeatUrl ?? "";
    this.skipUrl = root.dataset.skipUrl ?? "";
    this.ui = {
      alert: need<HTMLElement>(root, "[data-alert]"),
      recorder: need<HTMLElement>(root, "[data-recorder]"),
      timer: need<HTMLElement>(root, "[data-timer]"),
      timerState: need<HTMLElement>(root, "[data-timer-state]"),
      progress: need<HTMLProgressElement>(root, "[data-progress]"),
      level: need<HTMLMeterElement>(root, "[data-level]"),
      start: need<HTMLButtonElement>(root, "[data-action='start']"),
      pause: need<HTMLButtonElement>(root, "[data-action='pause']"),
      stop: need<HTMLButtonElement>(root, "[data-action='stop']"),
      again: need<HTMLButtonElement>(root, "[data-action='again']"),
      submit: need<HTMLButtonElement>(root, "[data-action='submit']"),
      skip: need<HTMLButtonElement>(root, "[data-action='skip']"),
      skipForm: need<HTMLFormElement>(root, "[data-skip-form]"),
      skipCancel: need<HTMLButtonElement>(root, "[data-action='skip-cancel']"),
      recovered: need<HTMLElement>(root, "[data-recovered]"),
      playback: need<HTMLAudioElement>(root, "[data-playback]"),
      outcome: need<HTMLElement>(root, "[data-outcome]"),
      status: need<HTMLElement>(root, "[data-status]"),
      texts: need<HTMLElement>(root, "[data-texts]"),
      transcript: need<HTMLElement>(root, "[data-transcript]"),
      caption: need<HTMLElement>(root, "[data-caption]"),
      stages: need<HTMLOListElement>(root, "[data-stages]"),
      estimate: need<HTMLElement>(root, "[data-estimate]"),
    };
    this.live = LiveGuide.fromPage(root);
  }

  async init(): Promise<void> {
    this.ui.start.addEventListener("click", () => void this.start());
    this.ui.again.addEventListener("click", () => void this.start());
    this.ui.stop.addEventListener("click", () => void this.stop());
    this.ui.pause.addEventListener("click", () => this.togglePause());
    this.ui.submit.addEventListener("click", () => void this.submit());
    this.ui.skip.addEventListener("click", () => this.openSkip());
    this.ui.skipCancel.addEventListener("click", () => this.closeSkip());
    this.ui.skipForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.skip();
    });
    document.addEventListener("keydown", (event) => this.onKey(event));
    document.addEventListener("keyup", (event) => {
      if (this.isSpace(event)) {
        event.preventDefault(); // no second toggle from a focused button's own activation
      }
    });
    this.render();
    try {
      this.store = await CaptureStore.open();
    } catch {
      this.showAlert(
        "This browser does not let the page keep recordings on disk, so a reload would " +
          "lose the audio. Recording still works; submit before leaving the page.",
      );
    }
    await this.recover();
    this.resumeOtherUploads();
    window.setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
  }

  /** Keep the lease while the annotator works (a long take must not lose its item). */
  private async heartbeat(): Promise<void> {
    const over = ["submitted", "uploading", "skipping", "skipped"].includes(this.phase);
    if (over || !this.heartbeatUrl) {
      return;
    }
    const body = new FormData();
    body.append("active_seconds", String(this.active.seconds()));
    try {
      await apiFetch(this.heartbeatUrl, { method: "POST", body });
    } catch {
      // offline: the upload still works on an expired lease while its slot is free
    }
  }

  // --- recovery -------------------------------------------------------------------------

  private async recover(): Promise<void> {
    const takes = await this.store.sessionsFor(this.assignmentId);
    if (takes.length === 0) {
      return;
    }
    const [newest, ...older] = takes;
    for (const old of older) {
      await this.store.deleteSession(old.sessionId);
    }
    const resumeUpload = newest.state === "uploading";
    newest.state = "recorded";
    await this.store.putSession(newest);
    this.take = newest;
    this.phase = "recorded";
    await this.showPlayback();
    this.ui.recovered.textContent =
      `Recovered ${Math.floor(newest.durationMs / 1000)} s of audio from before the page was ` +
      "left. Listen to it, submit it, or record again.";
    this.ui.recovered.hidden = false;
    this.render();
    if (resumeUpload && newest.durationMs >= this.minMs) {
      await this.submit();
    }
  }

  /** Uploads of earlier items that never got their answer: finish them quietly. Takes
   * of other items never submitted are kept a while (the item may come back to this
   * annotator), then dropped. */
  private resumeOtherUploads(): void {
    void this.store.sessions().then((all) => {
      for (const take of all) {
        if (take.assignmentId === this.assignmentId) {
          continue;
        }
        if (take.state !== "uploading" && Date.now() - take.startedAt > STALE_TAKE_MS) {
          void this.store.deleteSession(take.sessionId);
        } else if (take.state === "uploading") {
          this.upload(take)
            .then(() => this.store.deleteSession(take.sessionId))
            .catch((error: unknown) => console.warn("earlier recording not uploaded:", error));
        }
      }
    });
  }

  // --- recording ------------------------------------------------------------------------

  private async start(): Promise<void> {
    if (this.phase !== "idle" && this.phase !== "recorded") {
      return;
    }
    const previousPhase = this.phase;
    this.phase = "starting";
    this.clearAlert();
    this.render();
    const take: Session = {
      sessionId: newId(),
      assignmentId: this.assignmentId,
      idempotencyKey: newId(),
      uploadUrl: this.uploadUrl,
      mimeType: "",
      startedAt: Date.now(),
      durationMs: 0,
      chunkCount: 0,
      state: "recording",
      activeSeconds: 0,
    };
    const recorder = new Recorder({
      onChunk: (blob, elapsedMs) => {
        this.writes = this.writes
          .then(() => {
            take.durationMs = elapsedMs;
            take.mimeType = take.mimeType || blob.type || recorder.mimeType;
            return this.store.appendChunk(take, blob);
          })
          .finally(() => this.live?.onChunk(blob, elapsedMs))
          .catch((error: unknown) =>
            this.showAlert(`A piece of the recording could not be saved in this browser: ${String(error)}`),
          );
      },
      onLevel: (level) => {
        this.ui.level.value = level;
      },
    });
    try {
      await recorder.start();
    } catch (error) {
      this.phase = previousPhase;
      this.showAlert(error instanceof MicError ? error.message : String(error));
      this.render();
      return;
    }
    take.mimeType = recorder.mimeType;
    this.live?.start(take.idempotencyKey);
    const replaced = this.take;
    this.writes = this.writes.then(async () => {
      await this.store.putSession(take);
      if (replaced !== null) {
        await this.store.deleteSession(replaced.sessionId);
      }
    });
    this.recorder = recorder;
    this.take = take;
    this.phase = "recording";
    this.hidePlayback();
    this.ui.recovered.hidden = true;
    this.ticker = window.setInterval(() => this.tick(), 200);
    this.render();
  }

  private tick(): void {
    const elapsed = this.recorder?.elapsedMs() ?? 0;
    this.showTime(elapsed);
    if (elapsed >= this.maxMs && (this.phase === "recording" || this.phase === "paused")) {
      this.showAlert(`The recording reached the maximum of ${clock(this.maxMs)} and was stopped.`);
      void this.stop();
    }
  }

  private async stop(): Promise<void> {
    const recorder = this.recorder;
    const take = this.take;
    if ((this.phase !== "recording" && this.phase !== "paused") || recorder === null || take === null) {
      return;
    }
    this.phase = "stopping";
    this.render();
    window.clearInterval(this.ticker);
    await recorder.stop();
    this.recorder = null;
    await this.writes;
    this.live?.stop();
    take.durationMs = recorder.elapsedMs();
    take.state = "recorded";
    await this.store.putSession(take);
    this.phase = "recorded";
    await this.showPlayback();
    if (take.durationMs < this.minMs) {
      this.showAlert(
        `This recording is ${clock(take.durationMs)} long; descriptions need at least ` +
          `${clock(this.minMs)}. Press Record again and keep talking a little longer.`,
      );
    }
    this.render();
  }

  /** Pause or resume within the same take; the timer counts spoken time only. */
  private togglePause(): void {
    const recorder = this.recorder;
    if (recorder === null) {
      return;
    }
    if (this.phase === "recording") {
      recorder.pause();
      this.phase = "paused";
    } else if (this.phase === "paused") {
      recorder.resume();
      this.phase = "recording";
    }
    this.showTime(recorder.elapsedMs());
    this.render();
  }

  private typing(event: KeyboardEvent): boolean {
    const target = event.target as HTMLElement | null;
    return Boolean(target?.closest("input, textarea, select, [contenteditable='true'], audio"));
  }

  private isSpace(event: KeyboardEvent): boolean {
    const target = event.target as HTMLElement | null;
    const typing = target?.closest("input, textarea, select, [contenteditable='true'], audio");
    return (event.key === " " || event.code === "Space") && !typing;
  }

  private onKey(event: KeyboardEvent): void {
    const plain = !event.ctrlKey && !event.metaKey && !event.altKey;
    if (plain && (event.key === "p" || event.key === "P") && !this.typing(event)) {
      event.preventDefault();
      this.togglePause();
      return;
    }
    if (!this.isSpace(event)) {
      return;
    }
    event.preventDefault();
    if (event.repeat) {
      return;
    }
    if (this.phase === "recording" || this.phase === "paused") {
      void this.stop();
    } else if (this.phase === "idle") {
      void this.start();
    }
  }

  // --- submitting -----------------------------------------------------------------------

  private async upload(take: Session): Promise<RecordingOut> {
    const audio = await this.store.audio(take);
    const extension = take.mimeType.includes("ogg") ? "ogg" : take.mimeType.includes("mp4") ? "m4a" : "webm";
    const form = () => {
      const body = new FormData();
      body.append("assignment", String(take.assignmentId));
      body.append("audio", audio, `recording.${extension}`);
      body.append("active_seconds", String(take.activeSeconds));
      return body;
    };
    return uploadWithRetry<RecordingOut>(take.uploadUrl, form, take.idempotencyKey, {
      onRetry: (attempt, delayMs, reason) => {
        if (take.assignmentId === this.assignmentId) {
          this.showStatus(
            `Upload attempt ${attempt} failed (${reason}); trying again in ${Math.ceil(delayMs / 1000)} s. ` +
              "The recording is kept in this browser.",
          );
        }
      },
    });
  }

  private async submit(): Promise<void> {
    const take = this.take;
    if (take === null || (this.phase !== "recorded" && this.phase !== "idle")) {
      return;
    }
    if (take.durationMs < this.minMs) {
      return;
    }
    this.phase = "uploading";
    this.clearAlert();
    take.state = "uploading";
    take.activeSeconds = Math.max(take.activeSeconds, this.active.seconds());
    await this.store.putSession(take);
    this.render();
    this.showStatus("Uploading your description…");
    let result: RecordingOut;
    try {
      result = await this.upload(take);
    } catch (error) {
      this.phase = "recorded";
      if (error instanceof UploadRefusedError) {
        take.state = "recorded";
        await this.store.putSession(take);
        this.showAlert(`The server refused this recording: ${error.message}`);
      } else {
        this.showAlert(
          `Upload failed: ${error instanceof Error ? error.message : String(error)}. ` +
            "Your recording is kept in this browser; press Submit description to try again.",
        );
      }
      this.ui.outcome.hidden = true;
      this.render();
      return;
    }
    await this.store.deleteSession(take.sessionId);
    this.phase = "submitted";
    this.render();
    this.showResult(result);
    void this.follow(result.url);
  }

  private async follow(url: string): Promise<void> {
    let delay = 2000;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 1.5, 15000);
      try {
        const response = await apiFetch(url);
        if (!response.ok) {
          continue;
        }
        const recording = (await response.json()) as RecordingOut;
        this.showResult(recording);
        if (FINAL_STATUSES.has(recording.status)) {
          return;
        }
      } catch {
        // offline for a moment: ask again later
      }
    }
  }

  // --- skipping -------------------------------------------------------------------------

  private openSkip(): void {
    this.ui.skipForm.hidden = false;
    this.ui.skipForm.querySelector<HTMLInputElement>("input[type='radio']")?.focus();
  }

  private closeSkip(): void {
    this.ui.skipForm.hidden = true;
    this.ui.skip.focus();
  }

  /** Give the item up with a reason; a take recorded for it is dropped from this browser. */
  private async skip(): Promise<void> {
    if (!["idle", "recorded"].includes(this.phase)) {
      this.showAlert("Stop the recording first, then skip.");
      return;
    }
    const reason = skipReason(this.ui.skipForm);
    if (!reason) {
      this.showAlert("Say why you skip this image: choose a reason or write one.");
      return;
    }
    const previous = this.phase;
    this.phase = "skipping";
    this.render();
    try {
      await postSkip(this.skipUrl, reason);
    } catch (error) {
      this.phase = previous;
      this.render();
      this.showAlert(`The image could not be skipped: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (this.take !== null) {
      await this.store.deleteSession(this.take.sessionId);
      this.take = null;
    }
    this.hidePlayback();
    this.clearAlert();
    this.phase = "skipped";
    this.ui.skipForm.hidden = true;
    this.ui.texts.hidden = true;
    this.ui.stages.hidden = true;
    this.ui.estimate.hidden = true;
    this.ui.outcome.querySelector<HTMLElement>("[data-timing]")?.setAttribute("hidden", "");
    this.showStatus(`Image skipped (${reason}).`);
    this.render();
  }

  // --- display --------------------------------------------------------------------------

  private showResult(recording: RecordingOut): void {
    const reason = recording.failure_reason ? ` (${recording.failure_reason})` : "";
    const note = recording.processing_note ? ` ${recording.processing_note}` : "";
    this.showStatus(
      `Description submitted. Processing status: ${recording.status_label}${reason}${note}`,
    );
    this.ui.outcome.dataset.recordingStatus = recording.status;
    if (recording.progress) {
      showStages(this.ui.stages, this.ui.estimate, recording.progress);
    }
    if (recording.transcript !== null || recording.caption !== null) {
      this.ui.transcript.textContent = recording.transcript ?? "";
      this.ui.caption.textContent = recording.caption ?? "(not written yet)";
      this.ui.texts.hidden = false;
    }
  }

  private showStatus(text: string): void {
    this.ui.outcome.hidden = false;
    this.ui.status.textContent = text;
  }

  private showAlert(text: string): void {
    this.ui.alert.textContent = text;
    this.ui.alert.hidden = false;
  }

  private clearAlert(): void {
    this.ui.alert.textContent = "";
    this.ui.alert.hidden = true;
  }

  private showTime(ms: number): void {
    this.ui.timer.textContent = clock(ms);
    this.ui.progress.value = Math.min(ms, this.minMs) / 1000;
    const reached = ms >= this.minMs;
    const state = reached ? "minimum reached" : `${Math.ceil((this.minMs - ms) / 1000)} s to go`;
    this.ui.timerState.textContent = this.phase === "paused" ? `paused · ${state}` : state;
    this.ui.timerState.classList.toggle("reached", reached);
  }

  private async showPlayback(): Promise<void> {
    if (this.take === null) {
      return;
    }
    this.hidePlayback();
    this.playbackUrl = URL.createObjectURL(await this.store.audio(this.take));
    this.ui.playback.src = this.playbackUrl;
    this.ui.playback.hidden = false;
    this.showTime(this.take.durationMs);
  }

  private hidePlayback(): void {
    if (this.playbackUrl) {
      URL.revokeObjectURL(this.playbackUrl);
      this.playbackUrl = "";
    }
    this.ui.playback.removeAttribute("src");
    this.ui.playback.hidden = true;
  }

  private render(): void {
    const { start, pause, stop, again, submit, skip, recorder } = this.ui;
    const phase = this.phase;
    const hasTake = phase === "recorded" || (phase === "uploading" && this.take !== null);
    const live = phase === "recording" || phase === "paused";
    recorder.dataset.state = phase;
    recorder.hidden = phase === "submitted" || phase === "skipped";
    start.hidden = hasTake;
    start.disabled = phase !== "idle";
    pause.disabled = !live;
    pause.textContent = phase === "paused" ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(phase === "paused"));
    skip.disabled = !(phase === "idle" || phase === "recorded");
    stop.disabled = !live;
    again.hidden = !hasTake;
    again.disabled = phase !== "recorded";
    submit.disabled = !(phase === "recorded" && (this.take?.durationMs ?? 0) >= this.minMs);
  }
}

/** Start the capture page when this document is one. */
export function startCapture(doc: Document = document): void {
  const root = doc.querySelector<HTMLElement>("[data-capture]");
  if (root === null) {
    return;
  }
  setupZoom(root);
  void new CapturePage(root).init();
}

startCapture();
