// Upload with retries: network errors, 408, 429 and 5xx are retried with exponential
// backoff under the same Idempotency-Key (the server answers a repeat with the first
// result); any other 4xx is final and its message is shown to the annotator.
import { apiFetch } from "../csrf";

export class UploadRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface UploadOptions {
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (attempt: number, delayMs: number, reason: string) => void;
  headers?: Record<string, string>;
}

const RETRIABLE = (status: number) => status >= 500 || status === 408 || status === 429;

/** The message of a DRF error body: `detail`, or "field: message" of the first field. */
export async function errorMessage(response: Response): Promise<string> {
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object") {
      const record = body as Record<string, unknown>;
      if (typeof record.detail === "string") {
        return record.detail;
      }
      for (const [field, value] of Object.entries(record)) {
        const first = Array.isArray(value) ? value[0] : value;
        return `${field}: ${String(first)}`;
      }
    }
  } catch {
    // not JSON: fall through
  }
  return `the server answered ${response.status} ${response.statusText}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function uploadWithRetry<T>(
  url: string,
  makeBody: () => BodyInit,
  idempotencyKey: string,
  options: UploadOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 8;
  const base = options.baseDelayMs ?? 1000;
  const cap = options.maxDelayMs ?? 30000;
  for (let attempt = 1; ; attempt++) {
    let reason: string;
    try {
      const response = await apiFetch(url, {
        method: "POST",
        body: makeBody(),
        headers: { ...options.headers, "Idempotency-Key": idempotencyKey },
      });
      if (response.ok) {
        return (await response.json()) as T;
      }
      const message = await errorMessage(response);
      if (!RETRIABLE(response.status)) {
        throw new UploadRefusedError(response.status, message);
      }
      reason = message;
    } catch (error) {
      if (error instanceof UploadRefusedError) {
        throw error;
      }
      reason = "the network is unreachable";
    }
    if (attempt >= maxAttempts) {
      throw new Error(`the upload failed ${attempt} times (${reason})`);
    }
    const delay = Math.min(cap, base * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
    options.onRetry?.(attempt, delay, reason);
    await sleep(delay);
  }
}
