// The product page (/p/{product}), rendered by the server: this script shows the price in
// the reader's format and, for a signed-in buyer (the page's session, or a token in the URL
// fragment as the live pages take it), turns the sign-in link into a Buy button that buys
// through POST /api/v1/buy (the attribution of the link that led here rides along, or the
// show whose replay led here).

import { api, newKey, pageSession, problemText } from "./api.js";
import { hueOf, money, setText } from "./cards.js";
import { meta, pageToken } from "./hub_client.js";

const $ = (id) => document.getElementById(id);
const productId = meta("livecart-target");
const token = pageToken("livecart.token.buyer");
const session = token ? null : await pageSession();
const auth = token ? { token } : { csrf: session ? session.csrf : null };
const attribution = new URLSearchParams(location.search).get("attr");
// From a show's replay (/r/{stream}): the buy is the show's, channel `replay`.
const replayOf = new URLSearchParams(location.search).get("replay");
const price = $("price");
const priceMinor = Number(price.value);
setText(price, money(priceMinor, price.dataset.currency));

const placeholder = document.querySelector(".product-placeholder");
if (placeholder) placeholder.style.setProperty("--hue", String(hueOf(productId)));

const form = $("buy-form");
const button = $("buy");
let attempt = null; // {key, body}: a retry of the same request reuses its key

function signedIn(yes) {
  if (!button) return; // sold out: nothing to buy, nobody to sign in
  $("signin-buy").hidden = yes;
  $("signin-hint").hidden = yes;
  button.hidden = !yes;
}
signedIn(Boolean(token || session));

function say(kind, title, detail = "") {
  const box = $("buy-result");
  box.dataset.kind = kind;
  box.replaceChildren();
  for (const [className, text] of [["result-title", title], ["result-detail", detail]]) {
    if (!text) continue;
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    box.append(p);
  }
}

const OUTCOME = {
  "sold-out": ["Sold out", "Sorry, it just sold out. You were not charged."],
  "insufficient-stock": ["Sold out", "Sorry, there isn't enough left. You were not charged."],
  "limit-reached": ["Limit reached", "You've already bought as many of these as one buyer can."],
  "price-changed": ["The price just changed", "Reload the page to see the new price."],
  "wallet-missing": ["No saved wallet", "Save a shipping address and a payment method first."],
  "unauthorized": ["Sign in again", "Your sign-in has expired."],
};

async function buy(event) {
  event.preventDefault();
  if (!button || button.hidden) return;
  const variant = new FormData(form).get("variant");
  const body = { product_id: productId, variant, quantity: 1, expected_unit_price_minor: priceMinor };
  if (attribution) body.attribution = attribution;
  if (replayOf) Object.assign(body, { stream_id: replayOf, replay: true });
  const encoded = JSON.stringify(body);
  if (!attempt || attempt.body !== encoded) attempt = { key: newKey(), body: encoded };
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  say("", "", "Paying…");
  const r = await api("POST", "/api/v1/buy", { ...auth, body, headers: { "Idempotency-Key": attempt.key } });
  button.disabled = false;
  button.removeAttribute("aria-busy");
  if (r.status === 201 || (r.status === 202 && r.data.payment === "capture_pending")) {
    attempt = null;
    say("ok", "Order confirmed", `Order ${r.data.order.id}`);
  } else if (r.status === 202) {
    say("error", "Still confirming", "Your payment hasn't settled yet. Tap Buy to check again: you won't be charged twice.");
  } else if (r.status === 0 || r.status >= 500) {
    say("error", "Something went wrong", `${problemText(r)} Tap Buy to try again: you won't be charged twice.`);
  } else {
    attempt = null;
    const [title, detail] = OUTCOME[r.kind] || ["Couldn't buy", problemText(r)];
    say("error", title, detail);
    if (r.status === 401) signedIn(false); // the sign-in ended: Buy signs in again
  }
}

form.addEventListener("submit", buy);
