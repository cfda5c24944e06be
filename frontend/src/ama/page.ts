// The AMA page: ask a question, follow the answer being made (polling the session),
// accept it or reject it with feedback, retry a failed answer, skip with a reason.
// The server keeps every round; this page keeps only drafts (ama/drafts.ts).
import { apiFetch } from "../csrf";
import { setupZoom } from "../capture/zoom";
import { Drafts } from "./drafts";
import type { AmaRound, AmaSession } from "./types";

const POLL_MS = 1000;
const HEARTBEAT_MS = 60_000;
const SLOW_SECONDS = 30;

function need<T extends Element>(root: ParentNode, selector: string): T {
  const found = root.querySelector<T>(selector);
  if (found === null) {
    throw new Error(`AMA page markup lacks ${selector}`);
  }
  return found;
}

async function errorText(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body.detail === "string") {
      return body.detail;
    }
    return Object.entries(body)
      .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(" ") : String(value)}`)
      .join("; ");
  } catch {
    return `the server answered HTTP ${response.status}`;
  }
}

export class AmaPage {
  private readonly ui;
  private readonly drafts: Drafts;
  private session: AmaSession | null = null;
  private pollTimer: number | null = null;
  private busy = false;
  private activeSeconds = 0;

  constructor(private readonly root: HTMLElement) {
    const d = root.dataset;
    this.drafts = new Drafts(d.sessionId ?? "0");
    this.ui = {
      alert: need<HTMLElement>(root, "[data-alert]"),
      askForm: need<HTMLFormElement>(root, "[data-ask-form]"),
      question: need<HTMLTextAreaElement>(root, "[data-question]"),
      questionShown: need<HTMLElement>(root, "[data-question-shown]"),
      progress: need<HTMLElement>(root, "[data-progress]"),
      progressText: need<HTMLElement>(root, "[data-progress-text]"),
      failure: need<HTMLElement>(root, "[data-failure]"),
      failureText: need<HTMLElement>(root, "[data-failure-text]"),
      retry: need<HTMLButtonElement>(root, "[data-action='retry']"),
      answerBox: need<HTMLElement>(root, "[data-answer-box]"),
      answerTitle: need<HTMLElement>(root, "[data-answer-title]"),
      answer: need<HTMLElement>(root, "[data-answer]"),
      problems: need<HTMLElement>(root, "[data-problems]"),
      captionSource: need<HTMLElement>(root, "[data-caption-source]"),
      caption: need<HTMLElement>(root, "[data-caption]"),
      ocr: need<HTMLElement>(root, "[data-ocr]"),
      ocrWarning: need<HTMLElement>(root, "[data-ocr-warning]"),
      meta: need<HTMLElement>(root, "[data-meta]"),
      judge: need<HTMLElement>(root, "[data-judge]"),
      accept: need<HTMLButtonElement>(root, "[data-action='accept']"),
      rejectForm: need<HTMLFormElement>(root, "[data-reject-form]"),
      feedback: need<HTMLTextAreaElement>(root, "[data-feedback]"),
      historyBox: need<HTMLElement>(root, "[data-history-box]"),
      history: need<HTMLOListElement>(root, "[data-history]"),
      skipRow: need<HTMLElement>(root, "[data-skip-row]"),
      skip: need<HTMLButtonElement>(root, "[data-action='skip']"),
      skipForm: need<HTMLFormElement>(root, "[data-skip-form]"),
      skipCancel: need<HTMLButtonElement>(root, "[data-action='skip-cancel']"),
      outcome: need<HTMLElement>(root, "[data-outcome]"),
      status: need<HTMLElement>(root, "[data-status]"),
    };
  }

  start(): void {
    setupZoom(this.root);
    const ui = this.ui;
    const draft = this.drafts.load();
    ui.question.value = draft.question;
    ui.feedback.value = draft.feedback;
    const keep = () => this.drafts.save({ question: ui.question.value, feedback: ui.feedback.value });
    ui.question.addEventListener("input", keep);
    ui.feedback.addEventListener("input", keep);
    ui.askForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.ask();
    });
    ui.rejectForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.reject();
    });
    ui.accept.addEventListener("click", () => void this.accept());
    ui.retry.addEventListener("click", () => void this.retry());
    ui.skip.addEventListener("click", () => {
      ui.skipForm.hidden = false;
      ui.skipForm.querySelector<HTMLInputElement>("input[type='radio']")?.focus();
    });
    ui.skipCancel.addEventListener("click", () => {
      ui.skipForm.hidden = true;
      ui.skip.focus();
    });
    ui.skipForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.skipSession();
    });
    window.setInterval(() => {
      if (document.visibilityState === "visible") {
        this.activeSeconds += 1;
      }
    }, 1000);
    window.setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    void this.refresh();
  }

  // --- talking to the server ------------------------------------------------------------

  private roundUrl(round: AmaRound, action: string): string {
    return `${this.root.dataset.roundsUrl ?? ""}${round.id}/${action}/`;
  }

  private async send(url: string, body: unknown): Promise<boolean> {
    if (this.busy) {
      return false;
    }
    this.busy = true;
    this.setButtons();
    this.showAlert("");
    try {
      const response = await apiFetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body ?? {}),
      });
      if (!response.ok) {
        this.showAlert(`Not done: ${await errorText(response)}. Your text is kept.`);
        if (response.status === 409) {
          void this.refresh();
        }
        return false;
      }
      this.render((await response.json()) as AmaSession);
      return true;
    } catch {
      this.showAlert("The server could not be reached. Your text is kept; try again.");
      return false;
    } finally {
      this.busy = false;
      this.setButtons();
    }
  }

  private async refresh(): Promise<void> {
    try {
      const response = await apiFetch(this.root.dataset.sessionUrl ?? "");
      if (response.ok) {
        this.render((await response.json()) as AmaSession);
      } else {
        this.showAlert(`The session could not be loaded: ${await errorText(response)}.`);
      }
    } catch {
      this.showAlert("The server could not be reached; trying again.");
      this.schedulePoll();
    }
  }

  private schedulePoll(): void {
    if (this.pollTimer === null) {
      this.pollTimer = window.setTimeout(() => {
        this.pollTimer = null;
        void this.refresh();
      }, POLL_MS);
    }
  }

  private async heartbeat(): Promise<void> {
    const url = this.root.dataset.heartbeatUrl;
    if (!url || this.session === null || this.session.status !== "open") {
      return;
    }
    try {
      await apiFetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ active_seconds: this.activeSeconds }),
      });
    } catch {
      // The next heartbeat tries again; the lease lasts minutes.
    }
  }

  // --- the annotator's moves ------------------------------------------------------------

  private async ask(): Promise<void> {
    const question = this.ui.question.value.trim();
    if (question === "") {
      this.showAlert("Write a question first.");
      this.ui.question.focus();
      return;
    }
    if (await this.send(this.root.dataset.askUrl ?? "", { question })) {
      this.ui.question.value = "";
      this.drafts.save({ question: "", feedback: this.ui.feedback.value });
    }
  }

  private latest(): AmaRound | null {
    const rounds = this.session?.rounds ?? [];
    return rounds.length > 0 ? rounds[rounds.length - 1] : null;
  }

  private async accept(): Promise<void> {
    const round = this.latest();
    if (round !== null) {
      await this.send(this.roundUrl(round, "accept"), { active_seconds: this.activeSeconds });
    }
  }

  private async reject(): Promise<void> {
    const round = this.latest();
    const feedback = this.ui.feedback.value.trim();
    if (round === null) {
      return;
    }
    if (feedback === "") {
      this.showAlert("Say in Feedback what is wrong with the answer before rejecting it.");
      this.ui.feedback.focus();
      return;
    }
    if (await this.send(this.roundUrl(round, "reject"), { feedback })) {
      this.ui.feedback.value = "";
      this.drafts.save({ question: this.ui.question.value, feedback: "" });
    }
  }

  private async retry(): Promise<void> {
    const round = this.latest();
    if (round !== null) {
      await this.send(this.roundUrl(round, "retry"), {});
    }
  }

  private async skipSession(): Promise<void> {
    const form = new FormData(this.ui.skipForm);
    const choice = String(form.get("skip-reason") ?? "");
    const other = String(form.get("skip-other") ?? "").trim();
    const reason = choice === "other" ? other : choice;
    if (reason === "") {
      this.showAlert("Say why you skip this image: choose a reason or write one.");
      return;
    }
    await this.send(this.root.dataset.skipUrl ?? "", { reason });
  }

  // --- showing the session --------------------------------------------------------------

  private showAlert(text: string): void {
    this.ui.alert.textContent = text;
    this.ui.alert.hidden = text === "";
  }

  private setButtons(): void {
    for (const button of this.root.querySelectorAll<HTMLButtonElement>("button[data-action]")) {
      if (!button.dataset.action?.startsWith("skip")) {
        button.disabled = this.busy;
      }
    }
  }

  private render(session: AmaSession): void {
    this.session = session;
    const ui = this.ui;
    const round = this.latest();
    const finished = session.status !== "open";
    ui.askForm.hidden = round !== null || finished;
    ui.questionShown.hidden = round === null;
    ui.questionShown.textContent = round ? `Question: ${round.question}` : "";
    const making = round !== null && (round.status === "pending" || round.status === "running");
    ui.progress.hidden = !making;
    if (making && round !== null) {
      const waited = Math.max(0, Math.round((Date.now() - Date.parse(round.created_at)) / 1000));
      const stage = round.status === "pending" ? "Waiting for a worker" : "Reading the image and asking the model";
      const revised = round.index > 1 ? ` revised answer ${round.index}` : " answer";
      const slow = waited > SLOW_SECONDS ? " This is taking longer than usual: the model is slow or busy." : "";
      ui.progressText.textContent = `Making the${revised}… ${stage} (${waited} s).${slow}`;
      this.schedulePoll();
    }
    ui.failure.hidden = round === null || round.status !== "failed" || finished;
    ui.failureText.textContent = round?.failure_reason || "Making the answer failed.";
    const answered = round !== null && round.status === "done";
    ui.answerBox.hidden = !answered;
    if (answered && round !== null) {
      this.showAnswer(round);
    }
    ui.judge.hidden = !answered || finished || round?.verdict !== "pending";
    this.showHistory(session.rounds.filter((r) => r.verdict === "rejected"));
    ui.skipRow.hidden = finished;
    if (finished) {
      ui.skipForm.hidden = true;
      ui.outcome.hidden = false;
      ui.status.textContent =
        session.status === "accepted"
          ? `Answer accepted after ${session.rounds.length} round${session.rounds.length === 1 ? "" : "s"}: the question-answer pair is saved.`
          : `Image skipped (${session.skip_reason}).`;
    }
  }

  private showAnswer(round: AmaRound): void {
    const ui = this.ui;
    ui.answerTitle.textContent = round.index > 1 ? `Answer (revision ${round.index - 1})` : "Answer";
    ui.answer.textContent = round.answer;
    ui.problems.hidden = round.answer_problems.length === 0;
    ui.problems.textContent = `Check this answer closely: ${round.answer_problems.join("; ")}.`;
    ui.captionSource.textContent = `Source: ${round.caption_source_label || round.caption_source}${round.caption_model ? ` (${round.caption_model})` : ""}`;
    ui.caption.textContent = round.caption || "(no description of this image is available)";
    ui.ocr.textContent = round.ocr_text || "(no text was found in the image)";
    ui.ocrWarning.hidden = !round.ocr_instruction_like;
    const seconds = round.seconds_to_answer === null ? "" : `, answered in ${round.seconds_to_answer.toFixed(1)} s`;
    ui.meta.textContent = `Model ${round.model_name} (prompt ${round.prompt_version})${seconds}.`;
  }

  private showHistory(rejected: AmaRound[]): void {
    const ui = this.ui;
    ui.historyBox.hidden = rejected.length === 0;
    ui.history.replaceChildren(
      ...rejected.map((r) => {
        const item = document.createElement("li");
        const answer = document.createElement("p");
        answer.textContent = r.answer;
        const feedback = document.createElement("p");
        feedback.className = "feedback";
        feedback.textContent = `Your feedback: ${r.feedback}`;
        item.append(answer, feedback);
        return item;
      }),
    );
  }
}
