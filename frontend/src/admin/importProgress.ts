// The admin's import progress page (annotator_app/catalog/admin_import.py): polls the
// job's JSON state every second and redraws the bar, the counts and the outcome rows
// until the job has finished. Text goes in through textContent only.

interface Outcome {
  source: string;
  status: string;
  reason: string;
  image_id: number | null;
}

interface JobState {
  status: string;
  finished: boolean;
  total: number | null;
  done: number;
  counts: Record<string, number>;
  error: string;
  outcomes: Outcome[];
}

const POLL_MS = 1000;

function cell(text: string, className = ""): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

function outcomeRow(index: number, outcome: Outcome, imageUrl: string): HTMLTableRowElement {
  const row = document.createElement("tr");
  row.append(cell(String(index + 1)), cell(outcome.source));
  const status = cell("", `status-${outcome.status}`);
  if (outcome.image_id !== null && imageUrl) {
    const link = document.createElement("a");
    link.href = imageUrl.replace("/0/", `/${outcome.image_id}/`);
    link.textContent = outcome.status;
    status.append(link);
  } else {
    status.textContent = outcome.status;
  }
  row.append(status, cell(outcome.reason, "reason"));
  return row;
}

export function render(root: HTMLElement, state: JobState): void {
  const status = root.querySelector("[data-import-status]");
  if (status) {
    const word = state.status.charAt(0).toUpperCase() + state.status.slice(1);
    status.textContent = state.error ? `${word}: ${state.error}` : word;
  }
  const done = root.querySelector("[data-import-done]");
  if (done) {
    done.textContent = String(state.done);
  }
  const total = root.querySelector("[data-import-total]");
  if (total) {
    total.textContent = state.total === null ? "?" : String(state.total);
  }
  const bar = root.querySelector<HTMLProgressElement>("[data-import-bar]");
  if (bar) {
    bar.max = Math.max(state.total ?? 1, 1);
    bar.value = state.done;
    bar.textContent = String(state.done);
  }
  const counts = root.querySelector("[data-import-counts]");
  if (counts) {
    const c = state.counts;
    counts.textContent = `imported ${c.imported ?? 0}, duplicate ${c.duplicate ?? 0}, rejected ${c.rejected ?? 0}`;
  }
  const body = root.querySelector("[data-import-outcomes]");
  if (body) {
    const imageUrl = root.dataset.imageUrl ?? "";
    // Outcomes only ever grow: append the new ones, keep the rows already shown.
    for (let i = body.children.length; i < state.outcomes.length; i += 1) {
      body.append(outcomeRow(i, state.outcomes[i], imageUrl));
    }
  }
  root.dataset.importFinished = state.finished ? "true" : "false";
}

function setup(root: HTMLElement): void {
  const url = root.dataset.statusUrl;
  if (!url) {
    return;
  }
  const poll = async (): Promise<void> => {
    let finished = false;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const state = (await response.json()) as JobState;
        render(root, state);
        finished = state.finished;
      }
    } catch {
      // A dropped request (server restarting): try again at the next tick.
    }
    if (!finished) {
      window.setTimeout(() => void poll(), POLL_MS);
    }
  };
  void poll();
}

document.querySelectorAll<HTMLElement>("[data-import-job]").forEach(setup);
