// The HTTP API from the pages: bearer token, JSON in and out, problems (RFC 9457) parsed.

/**
 * Returns {status, ok, data, kind}: `kind` is the problem type's last segment
 * ("sold-out", "limit-reached", ...) or "network" when no answer came back.
 */
export async function api(method, path, { token = null, body = undefined, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
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
