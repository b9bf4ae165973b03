// The HTTP API from the pages: a bearer token or the page's session cookie, JSON in and
// out, problems (RFC 9457) parsed.

/**
 * Returns {status, ok, data, kind}: `kind` is the problem type's last segment
 * ("sold-out", "limit-reached", ...) or "network" when no answer came back.
 * `csrf`: the session's CSRF token (from GET /auth/session), which a change made with the
 * session cookie must carry; the cookie itself goes along on its own (same origin).
 * `file`: a File sent as the body itself (an image upload: no multipart, the server checks
 * what it is from its bytes); otherwise `body` is sent as JSON.
 */
export async function api(method, path, { token = null, csrf = null, body = undefined, file = undefined, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (csrf) init.headers["X-CSRF-Token"] = csrf;
  if (file !== undefined) {
    init.headers["Content-Type"] = file.type || "application/octet-stream";
    init.body = file;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { status: 0, ok: false, data: null, kind: "network" };
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
  }
  const kind = !response.ok && data && typeof data.type === "string"
    ? data.type.split("/").pop() : (response.ok ? "" : `http-${response.status}`);
  return { status: response.status, ok: response.ok, data, kind };
}

// One Idempotency-Key per tap (crypto.randomUUID needs a secure context; fall back).
export function newKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A problem's words for people, with field errors when there are any.
export function problemText(result) {
  if (result.kind === "network") return "No connection. Check your network and try again.";
  const data = result.data || {};
  const fields = Array.isArray(data.errors) ? data.errors.map((e) => `${e.field}: ${e.message}`) : [];
  const main = data.detail || data.title || `Request failed (${result.status}).`;
  return fields.length ? `${main} (${fields.join("; ")})` : main;
}

// The page's session ({signed_in, account, active, csrf}), or null when not signed in.
export async function pageSession() {
  const r = await api("GET", "/auth/session");
  return r.ok && r.data && r.data.signed_in ? r.data : null;
}

// `value` if it is a path on this node, else "/": a sign-in never sends anyone to another
// site. `//host` and `/\host` are other hosts to a browser; a URL parser drops tabs and
// newlines, so control characters are refused too (the server's safe_next twin).
export function safeNext(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")
    || value.includes("\\") || /[\u0000-\u001f\u007f]/.test(value)) return "/";
  try {
    const url = new URL(value, location.origin);
    return url.origin === location.origin ? value : "/";
  } catch (error) {
    return "/";
  }
}

// The sign-in page, coming back to this one afterwards.
export function signinHref() {
  return `/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
}
