// Skipping an item: the reason chosen in the skip form, and the call to the work API.
import { apiFetch } from "../csrf";

/** The chosen reason (or the typed one for "other"); "" when none is given. */
export function skipReason(form: HTMLFormElement): string {
  const data = new FormData(form);
  const choice = String(data.get("skip-reason") ?? "");
  const other = String(data.get("skip-other") ?? "").trim();
  return choice === "other" ? other : choice;
}

/** POST the skip; throws with the server's message when it is refused. */
export async function postSkip(url: string, reason: string): Promise<void> {
  const response = await apiFetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ reason }),
  });
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { detail?: string };
    throw new Error(body.detail ?? `the server answered ${response.status}`);
  }
}
