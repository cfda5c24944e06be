// Microphone capture: MediaRecorder in ~1 s slices (Opus in WebM where supported) and a
// live input level from a Web Audio AnalyserNode.

export type MicProblem = "denied" | "missing" | "busy" | "unsupported";

export class MicError extends Error {
  constructor(
    readonly problem: MicProblem,
    message: string,
  ) {
    super(message);
  }
}

export const PREFERRED_TYPE = "audio/webm;codecs=opus";
export const TIMESLICE_MS = 1000;

export interface RecorderHooks {
  onChunk: (blob: Blob, elapsedMs: number) => void;
  onLevel: (level: number) => void;
}

function micError(error: unknown): MicError {
  const name = error instanceof DOMException ? error.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return new MicError(
      "denied",
      "Microphone access was denied. Allow the microphone for this site (the icon in the " +
        "address bar) and press Start recording again.",
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return new MicError(
      "missing",
      "No microphone was found. Plug one in (or enable it in your system settings) and " +
        "press Start recording again.",
    );
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return new MicError(
      "busy",
      "The microphone is in use by another program or could not be started. Close it " +
        "there and press Start recording again.",
    );
  }
  return new MicError("unsupported", `The microphone could not be opened (${String(error)}).`);
}

export class Recorder {
  private stream: MediaStream | null = null;
  private media: MediaRecorder | null = null;
  private audioContext: AudioContext | null = null;
  private levelFrame = 0;
  // Spoken time: the sum of the finished stretches plus the running one (pauses excluded).
  private spokenMs = 0;
  private runningSince: number | null = null;

  constructor(private readonly hooks: RecorderHooks) {}

  get mimeType(): string {
    return this.media?.mimeType || PREFERRED_TYPE;
  }

  get recording(): boolean {
    return this.media?.state === "recording";
  }

  get paused(): boolean {
    return this.media?.state === "paused";
  }

  /** Time spoken into this take: pauses do not count (the server's WebM skips them too). */
  elapsedMs(): number {
    const running = this.runningSince === null ? 0 : performance.now() - this.runningSince;
    return this.spokenMs + running;
  }

  private endStretch(): void {
    if (this.runningSince !== null) {
      this.spokenMs += performance.now() - this.runningSince;
      this.runningSince = null;
    }
  }

  /** Pause within the same take; the microphone stays open for a quick resume. */
  pause(): void {
    if (this.media?.state === "recording") {
      this.media.pause();
      this.endStretch();
      this.hooks.onLevel(0);
    }
  }

  resume(): void {
    if (this.media?.state === "paused") {
      this.media.resume();
      this.runningSince = performance.now();
    }
  }

  /** Open the microphone and start recording; MicError says what went wrong. */
  async start(): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new MicError(
        "missing",
        "This browser cannot record audio here (no microphone access). Use a current " +
          "Chrome, Edge or Firefox over https.",
      );
    }
    if (typeof MediaRecorder === "undefined") {
      throw new MicError("unsupported", "This browser cannot record audio (no MediaRecorder).");
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      throw micError(error);
    }
    const options = MediaRecorder.isTypeSupported(PREFERRED_TYPE) ? { mimeType: PREFERRED_TYPE } : {};
    const media = new MediaRecorder(this.stream, options);
    media.ondataavailable = (event: BlobEvent) => {
      if (event.data.size > 0) {
        this.hooks.onChunk(event.data, this.elapsedMs());
      }
    };
    this.media = media;
    this.watchLevel(this.stream);
    media.start(TIMESLICE_MS);
    this.runningSince = performance.now();
  }

  /** Stop; resolves once the last chunk has been handed to onChunk. */
  stop(): Promise<void> {
    const media = this.media;
    if (media === null || media.state === "inactive") {
      this.release();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      media.addEventListener(
        "stop",
        () => {
          this.release();
          resolve();
        },
        { once: true },
      );
      this.endStretch();
      media.stop();
    });
  }

  private watchLevel(stream: MediaStream): void {
    try {
      this.audioContext = new AudioContext();
    } catch {
      return; // the meter is a help, recording works without it
    }
    const analyser = this.audioContext.createAnalyser();
    analyser.fftSize = 1024;
    this.audioContext.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      this.levelFrame = requestAnimationFrame(tick);
      if (this.paused) {
        return;
      }
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) {
        sum += s * s;
      }
      // RMS on a loose scale: normal speech sits around the middle of the meter.
      this.hooks.onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 4));
    };
    tick();
  }

  private release(): void {
    cancelAnimationFrame(this.levelFrame);
    this.hooks.onLevel(0);
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
    void this.audioContext?.close();
    this.audioContext = null;
  }
}
