// The sign-in page (/signin?next=<path>): email, then the mailed 6-digit code, then back to
// `next`. A mailed link lands on /auth/email/verify?challenge=..&token=.. (this page too):
// the script posts the link's token, so a mail scanner that only fetches links spends nothing.

import { api, pageSession, problemText, safeNext } from "./api.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next"));
let challenge = null;
let csrf = null;

function show(step) {
  for (const id of ["step-email", "step-code", "step-done"]) $(id).hidden = id !== step;
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
  return problemText(r);
}

function signedIn(data) {
  csrf = data.csrf;
  $("signed-in-as").textContent = data.account.email;
  $("continue").href = next;
  show("step-done");
  say("", "");
  $("continue").focus();
}

function askEmail(message = "") {
  challenge = null;
  show("step-email");
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

$("signout").addEventListener("click", async () => {
  const r = await api("POST", "/auth/signout", { csrf });
  if (r.ok) askEmail();
  else say("error", problemText(r));
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
