// Fallback when IndexedDB cannot be opened (private windows of some browsers): the
// same interface kept in memory, so recording still works, without crash safety.
import type { Session } from "./store";

export interface TakeStore {
  putSession(session: Session): Promise<void>;
  appendChunk(session: Session, blob: Blob): Promise<void>;
  sessions(): Promise<Session[]>;
  sessionsFor(assignmentId: number): Promise<Session[]>;
  audio(session: Session): Promise<Blob>;
  deleteSession(sessionId: string): Promise<void>;
}

export class MemoryStore implements TakeStore {
  private readonly takes = new Map<string, { session: Session; chunks: Blob[] }>();

  async putSession(session: Session): Promise<void> {
    const take = this.takes.get(session.sessionId);
    this.takes.set(session.sessionId, { session: { ...session }, chunks: take?.chunks ?? [] });
  }

  async appendChunk(session: Session, blob: Blob): Promise<void> {
    session.chunkCount += 1;
    await this.putSession(session);
    this.takes.get(session.sessionId)?.chunks.push(blob);
  }

  async sessions(): Promise<Session[]> {
    return [...this.takes.values()].map((t) => ({ ...t.session }));
  }

  async sessionsFor(assignmentId: number): Promise<Session[]> {
    return (await this.sessions()).filter((s) => s.assignmentId === assignmentId && s.chunkCount > 0);
  }

  async audio(session: Session): Promise<Blob> {
    return new Blob(this.takes.get(session.sessionId)?.chunks ?? [], { type: session.mimeType });
  }

  async deleteSession(sessionId: string): Promise<void> {
    this.takes.delete(sessionId);
  }
}
