// The admin page "Export" (/exports/): rows of queued or running snapshots poll the API
// (/api/v1/exports/<id>/) and show their progress; when one finishes the page reloads
// so its files and location appear. The page works without this script (reload by hand).

const POLL_MS = 1000;
const LIVE = new Set(["queued", "running"]);

interface ExportState {
  status: string;
  rows_done: number;
  rows_total: number | null;
}

async function poll(row: HTMLElement): Promise<boolean> {
  const response = await fetch(`/api/v1/exports/${row.dataset.export}/`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) {
    return false;
  }
  const state = (await response.json()) as ExportState;
  const bar = row.querySelector<HTMLProgressElement>("[data-export-progress]");
  const rows = row.querySelector<HTMLElement>("[data-export-rows]");
  if (bar && state.rows_total !== null) {
    bar.max = Math.max(state.rows_total, 1);
    bar.value = state.rows_done;
  }
  if (rows) {
    rows.textContent = String(state.rows_done);
  }
  return state.status !== row.dataset.status && !LIVE.has(state.status);
}

export function watchExports(root: Document = document): void {
  if (root.body.dataset.page !== "exports") {
    return;
  }
  const timer = window.setInterval(async () => {
    const live = Array.from(root.querySelectorAll<HTMLElement>("[data-export]")).filter((row) =>
      LIVE.has(row.dataset.status ?? ""),
    );
    if (live.length === 0) {
      window.clearInterval(timer);
      return;
    }
    const finished = await Promise.all(live.map((row) => poll(row).catch(() => false)));
    if (finished.some(Boolean)) {
      window.clearInterval(timer);
      window.location.reload();
    }
  }, POLL_MS);
}

if (typeof document !== "undefined" && document.body) {
  watchExports();
} else if (typeof document !== "undefined") {
  document.addEventListener("DOMContentLoaded", () => watchExports());
}
