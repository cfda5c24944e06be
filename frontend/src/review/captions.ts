// The review page of spoken descriptions: a zoomable image per description, and the
// keyboard (J/K move between descriptions, A accepts, R goes to the reason to reject,
// Space plays or pauses). Markup: annotator_app/templates/captions/review_queue.html.
// The verdict forms post without this script too; it only adds speed and a check.
import { setupZoom } from "../capture/zoom";

function typingIn(target: EventTarget | null): boolean {
  const element = target as HTMLElement | null;
  return Boolean(element?.closest("input, textarea, select, [contenteditable='true']"));
}

class ReviewPage {
  private readonly items: HTMLElement[];
  private current = 0;

  constructor(root: HTMLElement) {
    this.items = Array.from(root.querySelectorAll<HTMLElement>("[data-review-item]"));
  }

  start(): void {
    this.items.forEach((item, index) => {
      setupZoom(item);
      item.addEventListener("pointerdown", () => this.select(index, false));
      item.addEventListener("focusin", () => this.select(index, false));
      const form = item.querySelector<HTMLFormElement>("[data-verdict-form]");
      form?.addEventListener("submit", (event) => this.checkVerdict(event, form));
    });
    document.addEventListener("keydown", (event) => this.onKey(event));
    if (this.items.length > 0) {
      this.select(0, false);
    }
  }

  /** Make item `index` the one the keys act on; `scroll` brings it into view and focus. */
  private select(index: number, scroll: boolean): void {
    if (index < 0 || index >= this.items.length) {
      return;
    }
    this.items[this.current]?.classList.remove("current");
    this.items[this.current]?.removeAttribute("aria-current");
    this.current = index;
    const item = this.items[index];
    item.classList.add("current");
    item.setAttribute("aria-current", "true");
    if (scroll) {
      item.focus({ preventScroll: true });
      item.scrollIntoView({ block: "start", behavior: "auto" });
    }
  }

  /** Reject needs a reason: say so next to the field instead of a round trip. */
  private checkVerdict(event: SubmitEvent, form: HTMLFormElement): void {
    const submitter = event.submitter as HTMLButtonElement | null;
    const reason = form.querySelector<HTMLInputElement>("[data-reason]");
    const error = form.querySelector<HTMLElement>("[data-verdict-error]");
    if (submitter?.value === "reject" && reason !== null && reason.value.trim() === "") {
      event.preventDefault();
      if (error !== null) {
        error.textContent = "Say why you reject this description: type a reason, then press Reject.";
        error.hidden = false;
      }
      reason.setAttribute("aria-invalid", "true");
      reason.focus();
    }
  }

  private onKey(event: KeyboardEvent): void {
    if (event.ctrlKey || event.metaKey || event.altKey || this.items.length === 0) {
      return;
    }
    if (typingIn(event.target)) {
      if (event.key === "Escape") {
        this.items[this.current].focus({ preventScroll: true });
      }
      return;
    }
    const item = this.items[this.current];
    const key = event.key.toLowerCase();
    if (key === "j") {
      this.select(Math.min(this.current + 1, this.items.length - 1), true);
    } else if (key === "k") {
      this.select(Math.max(this.current - 1, 0), true);
    } else if (key === "a") {
      const form = item.querySelector<HTMLFormElement>("[data-verdict-form]");
      const accept = item.querySelector<HTMLButtonElement>("[data-decision='accept']");
      if (form && accept) {
        form.requestSubmit(accept);
      }
    } else if (key === "r") {
      item.querySelector<HTMLInputElement>("[data-reason]")?.focus();
    } else if (key === " " && !(event.target as HTMLElement | null)?.closest("button, a, audio")) {
      const audio = item.querySelector<HTMLAudioElement>("audio");
      if (audio) {
        void (audio.paused ? audio.play() : Promise.resolve(audio.pause()));
      }
    } else {
      return;
    }
    event.preventDefault();
  }
}

/** Start the review page when this document is one. */
export function startCaptionReview(doc: Document = document): void {
  const root = doc.querySelector<HTMLElement>("[data-review]");
  if (root !== null) {
    new ReviewPage(root).start();
  }
}

startCaptionReview();
