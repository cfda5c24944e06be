// Text typed on the AMA page is kept in localStorage until the server has it, so a
// reload, a crash or a lost connection never loses a question or feedback.

export interface Draft {
  question: string;
  feedback: string;
}

export class Drafts {
  private readonly key: string;

  constructor(sessionId: string, private readonly storage: Storage | null = safeStorage()) {
    this.key = `pixmo-ama-draft-${sessionId}`;
  }

  load(): Draft {
    const empty = { question: "", feedback: "" };
    if (this.storage === null) {
      return empty;
    }
    try {
      const parsed = JSON.parse(this.storage.getItem(this.key) ?? "null") as Partial<Draft> | null;
      return {
        question: typeof parsed?.question === "string" ? parsed.question : "",
        feedback: typeof parsed?.feedback === "string" ? parsed.feedback : "",
      };
    } catch {
      return empty;
    }
  }

  save(draft: Draft): void {
    try {
      if (draft.question === "" && draft.feedback === "") {
        this.storage?.removeItem(this.key);
      } else {
        this.storage?.setItem(this.key, JSON.stringify(draft));
      }
    } catch {
      // Storage full or disabled: the text is still in the page.
    }
  }
}

function safeStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
