// After submit: the recording's pipeline stages (uploaded, transcribing, cleaning,
// summary) as a list marking the one running, and the expected wait in words.
// The server computes both (annotator_app/captions/progress.py).

export interface StageOut {
  name: string;
  label: string;
  state: string; // done | current | waiting | failed | flagged
}

export interface ProgressOut {
  stages: StageOut[];
  current: string | null;
  estimate_seconds: number | null;
  note: string;
}

/** Mark each <li data-stage> of `list` with its state; show the note in `estimate`. */
export function showStages(list: HTMLElement, estimate: HTMLElement, progress: ProgressOut): void {
  for (const stage of progress.stages) {
    const item = list.querySelector<HTMLElement>(`[data-stage='${stage.name}']`);
    if (item === null) {
      continue;
    }
    item.dataset.state = stage.state;
    if (stage.state === "current") {
      item.setAttribute("aria-current", "step");
    } else {
      item.removeAttribute("aria-current");
    }
    item.title = `${stage.label}: ${stage.state}`;
  }
  list.hidden = false;
  estimate.textContent = progress.note;
  estimate.hidden = progress.note === "";
}
