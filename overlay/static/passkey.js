// Passkeys (WebAuthn) from the pages: add one to the signed-in account, sign in with one,
// confirm a buy with one. The server makes every challenge and checks every answer
// (live/web/passkey_api.py, live/web/buy_confirm.py); this module carries the bytes between
// its JSON (base64url) and navigator.credentials.
//
// Every function answers like api() in api.js: {status, ok, data, kind}. When the browser's
// prompt fails (closed, timed out, no passkey here) the answer has status 0 and a kind of
// "passkey-cancelled", "passkey-exists" or "passkey-unavailable", with a detail to show.

import { api } from "./api.js";

// Passkeys need a secure context (https, or http://localhost) and a browser that has them.
export function passkeysAvailable() {
  return Boolean(window.isSecureContext && window.PublicKeyCredential && navigator.credentials);
}

/**
 * Confirm one purchase with a passkey: options bound to this very purchase, one tap, and
 * the answer to send with the purchase as `passkey`. purchase: {path, body, key, csrf}:
 * the paying endpoint's path (a buy, a cart checkout, a held order's pay; its options are
 * at path + "/confirmation"), the body without `passkey`, the Idempotency-Key if it takes
 * one. Returns {ok: true, passkey} or a refusal shaped like api()'s.
 */
export async function confirmWithPasskey(purchase) {
  const { path, body, key, csrf } = purchase;
  if (!passkeysAvailable()) {
    return refusal("passkey-unavailable", "Your account confirms purchases with a passkey, "
      + "which this browser can't use. Open this page in a browser that has your passkey.");
  }
  const headers = key ? { "Idempotency-Key": key } : {};
  const r = await api("POST", `${path}/confirmation`, { csrf, body, headers });
  if (!r.ok) return r;
  const credential = await prompt(() => navigator.credentials.get({ publicKey: requestOptions(r.data) }));
  return credential.ok === false ? credential : { ok: true, passkey: assertionJSON(credential) };
}

/**
 * Sends a purchase ({path, body, key}) as a page does, with one passkey tap first when the
 * account confirms purchases (`tap`: the session says so; the server says so too, 403
 * passkey-required, when the page did not know). `auth`: api()'s {token} or {csrf}.
 * `onTap` runs before the prompt, `onConfirmed` after it (for the page's words).
 * Answers the api() result of the purchase, or the refusal of the tap. A purchase once
 * confirmed is marked so: its retry (the same purchase) needs no new tap.
 */
export async function payConfirmed(purchase, { auth, tap, onTap = () => {}, onConfirmed = () => {} }) {
  const send = (extra) => api("POST", purchase.path, {
    ...auth, body: { ...purchase.body, ...extra },
    headers: purchase.key ? { "Idempotency-Key": purchase.key } : {} });
  const first = tap && !purchase.confirmed ? null : await send({});
  if (first && first.kind !== "passkey-required") return first;
  onTap();
  const confirmation = await confirmWithPasskey({ ...purchase, csrf: auth.csrf || null });
  if (!confirmation.ok) return confirmation;
  purchase.confirmed = true;
  onConfirmed();
  return send({ passkey: confirmation.passkey });
}

// Sign in with a passkey of this site (no email asked: the browser offers the ones it has).
export async function signInWithPasskey() {
  const r = await api("POST", "/auth/passkey/options");
  if (!r.ok) return r;
  const credential = await prompt(() => navigator.credentials.get({ publicKey: requestOptions(r.data) }));
  if (credential.ok === false) return credential;
  return api("POST", "/auth/passkey/verify", { body: { credential: assertionJSON(credential) } });
}

// Add a passkey to the signed-in account; answers the new passkey ({id, name, ...}).
export async function addPasskey({ csrf, name = "" }) {
  const r = await api("POST", "/auth/passkeys/options", { csrf });
  if (!r.ok) return r;
  const credential = await prompt(() => navigator.credentials.create({ publicKey: creationOptions(r.data) }));
  if (credential.ok === false) return credential;
  return api("POST", "/auth/passkeys", { csrf, body: { credential: attestationJSON(credential), name } });
}

async function prompt(ask) {
  try {
    const credential = await ask();
    return credential || refusal("passkey-cancelled", "No passkey was chosen.");
  } catch (error) {
    if (error && error.name === "InvalidStateError") {
      return refusal("passkey-exists", "This device already has a passkey for your account.");
    }
    return refusal("passkey-cancelled", "The passkey prompt was closed or timed out.");
  }
}

function refusal(kind, detail) {
  return { status: 0, ok: false, kind, data: { detail } };
}

// ---- base64url (RFC 4648 section 5, no padding) <-> bytes

function toB64(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

const descriptors = (list) => (list || []).map((d) => ({ ...d, id: fromB64(d.id) }));

function creationOptions(json) {
  return {
    ...json, challenge: fromB64(json.challenge), user: { ...json.user, id: fromB64(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

function requestOptions(json) {
  return { ...json, challenge: fromB64(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

function attestationJSON(credential) {
  const response = credential.response;
  return {
    id: credential.id, rawId: toB64(credential.rawId), type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null, clientExtensionResults: {},
    response: {
      clientDataJSON: toB64(response.clientDataJSON), attestationObject: toB64(response.attestationObject),
      transports: typeof response.getTransports === "function" ? response.getTransports() : [],
    },
  };
}

function assertionJSON(credential) {
  const response = credential.response;
  return {
    id: credential.id, rawId: toB64(credential.rawId), type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null, clientExtensionResults: {},
    response: {
      clientDataJSON: toB64(response.clientDataJSON), authenticatorData: toB64(response.authenticatorData),
      signature: toB64(response.signature),
      userHandle: response.userHandle && response.userHandle.byteLength ? toB64(response.userHandle) : null,
    },
  };
}
