// IndexedDB store of recordings in progress: every MediaRecorder chunk is written as it
// arrives, so a reload, a crash or a lost network keeps the audio. A session is one take
// for one assignment; its chunks are deleted only after the server answered 2xx.

const DB_NAME = "pixmo-capture";
const DB_VERSION = 1;
const SESSIONS = "sessions";
const CHUNKS = "chunks";

export type SessionState = "recording" | "recorded" | "uploading";

export interface Session {
  sessionId: string;
  assignmentId: number;
  idempotencyKey: string; // made at record start, sent with every upload attempt
  uploadUrl: string;
  mimeType: string;
  startedAt: number; // ms since the epoch
  durationMs: number; // recorded time the stored chunks cover
  chunkCount: number;
  state: SessionState;
  activeSeconds: number;
}

interface Chunk {
  sessionId: string;
  seq: number;
  blob: Blob;
}

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

export class CaptureStore {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(): Promise<CaptureStore> {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      const sessions = db.createObjectStore(SESSIONS, { keyPath: "sessionId" });
      sessions.createIndex("assignment", "assignmentId");
      db.createObjectStore(CHUNKS, { keyPath: ["sessionId", "seq"] });
    };
    return new CaptureStore(await promised(request));
  }

  async putSession(session: Session): Promise<void> {
    const tx = this.db.transaction(SESSIONS, "readwrite");
    tx.objectStore(SESSIONS).put(session);
    await done(tx);
  }

  /** Store one chunk and the session's new length in one transaction. */
  async appendChunk(session: Session, blob: Blob): Promise<void> {
    const tx = this.db.transaction([SESSIONS, CHUNKS], "readwrite");
    const chunk: Chunk = { sessionId: session.sessionId, seq: session.chunkCount, blob };
    tx.objectStore(CHUNKS).put(chunk);
    session.chunkCount += 1;
    tx.objectStore(SESSIONS).put(session);
    await done(tx);
  }

  async sessions(): Promise<Session[]> {
    const tx = this.db.transaction(SESSIONS, "readonly");
    return promised(tx.objectStore(SESSIONS).getAll() as IDBRequest<Session[]>);
  }

  /** This assignment's takes that hold audio, newest first. */
  async sessionsFor(assignmentId: number): Promise<Session[]> {
    const tx = this.db.transaction(SESSIONS, "readonly");
    const index = tx.objectStore(SESSIONS).index("assignment");
    const found = await promised(index.getAll(assignmentId) as IDBRequest<Session[]>);
    return found.filter((s) => s.chunkCount > 0).sort((a, b) => b.startedAt - a.startedAt);
  }

  async audio(session: Session): Promise<Blob> {
    const tx = this.db.transaction(CHUNKS, "readonly");
    const range = IDBKeyRange.bound([session.sessionId, 0], [session.sessionId, Infinity]);
    const chunks = await promised(tx.objectStore(CHUNKS).getAll(range) as IDBRequest<Chunk[]>);
    chunks.sort((a, b) => a.seq - b.seq);
    return new Blob(
      chunks.map((c) => c.blob),
      { type: session.mimeType },
    );
  }

  async deleteSession(sessionId: string): Promise<void> {
    const tx = this.db.transaction([SESSIONS, CHUNKS], "readwrite");
    tx.objectStore(SESSIONS).delete(sessionId);
    tx.objectStore(CHUNKS).delete(IDBKeyRange.bound([sessionId, 0], [sessionId, Infinity]));
    await done(tx);
  }
}

/** A random UUID (crypto.randomUUID needs a secure context; 127.0.0.1 is one). */
export function newId(): string {
  if (typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
