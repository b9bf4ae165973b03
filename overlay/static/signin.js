// The sign-in page (/signin?next=<path>): email, then the mailed 6-digit code, then back to
// `next`; or a passkey, in one tap. A mailed link lands on /auth/email/verify?challenge=..&token=..
// (this page too): the script posts the link's token, so a mail scanner that only fetches
// links spends nothing. Signed in, the page holds the account: its name, its passkeys (add,
// remove), sign out of this browser or of every one.

import { api, pageSession, problemText, safeNext } from "./api.js";
import { addPasskey, passkeysAvailable, signInWithPasskey } from "./passkey.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next"));
let challenge = null;
let csrf = null;

function show(step) {
  for (const id of ["step-email", "step-code", "step-done"]) $(id).hidden = id !== step;
  $("passkeys").hidden = step !== "step-done";
}

function say(kind, text) {
  const box = $("message");
  box.dataset.kind = kind;
  box.textContent = text;
}

function busy(button, on, label) {
  button.disabled = on;
  if (on) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
  button.textContent = label;
}

function refusal(r) {
  if (r.status === 429 && r.kind === "too-many-requests") {
    const minutes = Math.max(1, Math.ceil((r.data.retry_after_s || 60) / 60));
    return `Too many tries. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
  }
  if (r.kind === "signin-expired") return "This code has expired or was used. Ask for a new one.";
  if (r.kind === "too-many-attempts") return "Too many wrong codes. Ask for a new one.";
  if (r.kind === "wrong-code") return r.data.detail.replace(/^that/, "That");
  if (r.kind === "invalid-email") return "That doesn't look like an email address.";
  if (r.kind === "passkey-rejected") return "That passkey couldn't be verified here. Sign in with your email instead.";
  if (r.kind === "passkey-challenge-expired") return "That took too long. Try again.";
  return problemText(r);
}

function signedIn(data) {
  csrf = data.csrf;
  $("signed-in-as").textContent = data.account.email;
  $("display-name").value = data.account.display_name || "";
  $("continue").href = next;
  show("step-done");
  say("", "");
  $("continue").focus();
  $("passkey-form").hidden = !passkeysAvailable();
  loadPasskeys();
}

function askEmail(message = "") {
  challenge = null;
  show("step-email");
  $("passkey-way").hidden = !passkeysAvailable();
  say(message ? "error" : "", message);
  $("email").focus();
}

$("email-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim();
  if (!email) {
    say("error", "Enter your email address.");
    $("email").focus();
    return;
  }
  const button = $("email-submit");
  busy(button, true, "Sending…");
  const r = await api("POST", "/auth/email/start", { body: { email, next } });
  busy(button, false, "Email me a code");
  if (r.status !== 202) {
    say("error", refusal(r));
    return;
  }
  challenge = r.data.challenge;
  $("sent-to").textContent = email;
  $("code").value = "";
  show("step-code");
  say("", "");
  $("code").focus();
});

$("code-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("code").value.replace(/\s/g, "");
  if (!/^[0-9]{6}$/.test(code)) {
    say("error", "The code is 6 digits.");
    $("code").focus();
    return;
  }
  const button = $("code-submit");
  busy(button, true, "Signing in…");
  const r = await api("POST", "/auth/email/verify", { body: { challenge, code } });
  if (r.ok) {
    location.replace(next);
    return;
  }
  busy(button, false, "Sign in");
  if (r.kind === "signin-expired" || r.kind === "too-many-attempts") askEmail(refusal(r));
  else {
    say("error", refusal(r));
    $("code").select();
  }
});

$("restart").addEventListener("click", () => askEmail());

$("passkey-signin").addEventListener("click", async () => {
  const button = $("passkey-signin");
  busy(button, true, "Waiting for your passkey…");
  const r = await signInWithPasskey();
  if (r.ok) {
    location.replace(next);
    return;
  }
  busy(button, false, "Sign in with a passkey");
  say("error", refusal(r));
});

// ---- the signed-in account's passkeys

const day = (ms) => new Date(ms).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });

function passkeyRow(passkey) {
  const row = document.createElement("li");
  row.className = "passkey";
  const text = document.createElement("div");
  text.className = "passkey-text";
  const name = document.createElement("span");
  name.className = "passkey-name";
  name.textContent = passkey.name;
  const meta = document.createElement("span");
  meta.className = "passkey-meta";
  meta.textContent = `Added ${day(passkey.created_ms)} · `
    + (passkey.last_used_ms ? `last used ${day(passkey.last_used_ms)}` : "not used yet");
  text.append(name, meta);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "btn btn-secondary btn-small";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `Remove ${passkey.name}`);
  remove.addEventListener("click", () => removePasskey(passkey, remove));
  row.append(text, remove);
  return row;
}

async function loadPasskeys() {
  const r = await api("GET", "/auth/passkeys");
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  $("passkey-list").replaceChildren(...r.data.items.map(passkeyRow));
}

async function removePasskey(passkey, button) {
  busy(button, true, "Removing…");
  const r = await api("DELETE", `/auth/passkeys/${encodeURIComponent(passkey.id)}`, { csrf });
  if (!r.ok && r.status !== 404) {
    busy(button, false, "Remove");
    say("error", problemText(r));
    return;
  }
  say("ok", `Removed the passkey “${passkey.name}”.`);
  await loadPasskeys();
}

$("passkey-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("passkey-add");
  busy(button, true, "Waiting for your passkey…");
  const r = await addPasskey({ csrf, name: $("passkey-name").value.trim() });
  busy(button, false, "Add a passkey");
  if (!r.ok) {
    say("error", refusal(r));
    return;
  }
  $("passkey-name").value = "";
  say("ok", `Passkey “${r.data.name}” added: sign in with it next time, no code needed.`);
  await loadPasskeys();
});

$("signout").addEventListener("click", async () => {
  const r = await api("POST", "/auth/signout", { csrf });
  if (r.ok) askEmail();
  else say("error", problemText(r));
});

$("name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const r = await api("PATCH", "/auth/account", { csrf, body: { display_name: $("display-name").value } });
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  $("display-name").value = r.data.display_name;
  say("ok", r.data.display_name ? `Saved: you're ${r.data.display_name}.` : "Name removed.");
});

$("signout-everywhere").addEventListener("click", async () => {
  const r = await api("POST", "/auth/signout-everywhere", { csrf });
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  askEmail();
  const n = r.data.ended;
  say("ok", `Signed out everywhere (${n} ${n === 1 ? "session" : "sessions"} ended).`);
});

async function fromLink() {
  const body = { challenge: params.get("challenge") || "", token: params.get("token") || "" };
  // The token leaves the address bar (and the history) before anything else happens.
  history.replaceState(null, "", next === "/" ? "/signin" : `/signin?next=${encodeURIComponent(next)}`);
  say("", "Signing you in…");
  const r = await api("POST", "/auth/email/verify", { body });
  if (r.ok) {
    location.replace(next);
    return;
  }
  askEmail(r.status === 422 ? "This sign-in link is broken. Ask for a new code." : refusal(r));
}

async function init() {
  if (location.pathname === "/auth/email/verify") {
    await fromLink();
    return;
  }
  const session = await pageSession();
  if (session) signedIn(session);
  else askEmail();
}

init();
