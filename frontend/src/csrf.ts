// Django's CSRF protection for fetch(): the token travels in the `csrftoken` cookie
// and must come back in the X-CSRFToken header on every unsafe request.

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/** The value of cookie `name` in `cookieString`, or null when it is absent. */
export function readCookie(name: string, cookieString: string = document.cookie): string | null {
  for (const part of cookieString.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) {
      return decodeURIComponent(rest.join("="));
    }
  }
  return null;
}

/**
 * fetch() for our own API: same-origin credentials, JSON accepted, and the CSRF
 * header added to unsafe methods.
 */
export function apiFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const method = (init.method ?? "GET").toUpperCase();
  const headers = new Headers(init.headers);
  if (!headers.has("Accept")) {
    headers.set("Accept", "application/json");
  }
  if (!SAFE_METHODS.has(method)) {
    const token = readCookie("csrftoken");
    if (token !== null) {
      headers.set("X-CSRFToken", token);
    }
  }
  return fetch(input, { ...init, method, headers, credentials: "same-origin" });
}
