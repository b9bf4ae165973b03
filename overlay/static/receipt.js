// An order's receipt (/me/orders/{order}): the line, the price, where it ships (as it was
// at purchase), the card's brand and last four, the times, its carrier and tracking number,
// its refunds and its return; Cancel while it has not shipped, Return once it is paid, Pay
// now while it is held (a cart or waitlist hold), with the wallet's default card and address
// and, when the account confirms purchases, one passkey tap.

import { money } from "./cards.js";
import { api, pageSession, problemText, signinHref } from "./api.js";
import { cardName } from "./wallet_forms.js";
import {
  cancellable, cancelOrder, refundWords, requestReturn, returnable, returnWords, stateWords,
  trackingWords, when,
} from "./order_words.js";
import { payConfirmed } from "./passkey.js";

const $ = (id) => document.getElementById(id);
const orderId = document.querySelector('meta[name="livecart-target"]').content;
let session = null;

function say(kind, text) {
  const box = $("banner");
  box.dataset.kind = kind;
  box.textContent = text;
}

function show(order) {
  $("receipt-title").textContent = order.title || order.product;
  $("receipt-state").textContent = stateWords(order);
  $("receipt-state").dataset.state = order.state;
  $("r-line").textContent = `${order.qty} × ${money(order.unit_price_minor, order.currency)}`
    + (order.variant && order.variant !== "default" ? ` (${order.variant_name || order.variant})` : "");
  $("r-total").textContent = money(order.amount_minor, order.currency);
  const to = order.ship_to;
  $("r-ship").textContent = to ? [to.name, to.line1, to.line2, `${to.postal_code} ${to.city}`,
    to.country].filter(Boolean).join(", ") : "—";
  $("r-card").textContent = order.card ? cardName(order.card) : "—";
  $("r-created").textContent = when(order.created_ms);
  $("r-updated").textContent = when(order.updated_ms);
  $("r-id").textContent = order.id;
  $("cancel").hidden = !cancellable(order);
  $("pay").hidden = order.state !== "reserved";
  if (order.state === "reserved" && order.expires_ms) {
    $("receipt-state").textContent = `${stateWords(order)}: pay by ${when(order.expires_ms)}`;
  }
  line("r-tracking", trackingWords(order));
  line("r-refunded", refundWords(order, money));
  line("r-return", returnWords(order));
  $("return-form").hidden = !returnable(order);
  $("receipt").hidden = false;
}

/** Fills a receipt line, hiding it (its <dt> too) when there is nothing to say. */
function line(id, text) {
  const dd = $(id);
  dd.textContent = text;
  dd.hidden = !text;
  dd.previousElementSibling.hidden = !text;
}

$("return-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("return-send");
  button.disabled = true;
  const r = await requestReturn(api, orderId, $("return-reason").value.trim(), session.csrf);
  button.disabled = false;
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  say("ok", "Return requested. The shop will answer here.");
  show(r.data);
});

// One purchase per page view: a retry after an unknown outcome is the same purchase.
const held = { path: `/api/v1/orders/${encodeURIComponent(orderId)}/pay`, body: {} };

$("pay").addEventListener("click", async () => {
  $("pay").disabled = true;
  say("", "Paying…");
  const r = await payConfirmed(held, {
    auth: { csrf: session.csrf }, tap: session.buy_confirm === "passkey",
    onTap: () => say("", "Confirm with your passkey…"), onConfirmed: () => say("", "Paying…") });
  $("pay").disabled = false;
  const order = r.data && r.data.order;
  if (order) show(order);  // paid, declined, expired: the order as it stands
  if (r.status === 201) say("ok", "Paid. Thank you!");
  else if (r.status === 202) say("ok", "Payment authorized; the charge completes in a moment.");
  else say("error", problemText(r));
});

$("cancel").addEventListener("click", async () => {
  $("cancel").disabled = true;
  const r = await cancelOrder(api, orderId, session.csrf);
  $("cancel").disabled = false;
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  say("ok", "Order cancelled. You won't be charged.");
  show(r.data);
});

async function init() {
  session = await pageSession();
  if (!session) {
    location.replace(signinHref());
    return;
  }
  const r = await api("GET", `/api/v1/orders/${encodeURIComponent(orderId)}`);
  if (r.status === 404) {
    say("error", "No such order among yours.");
    return;
  }
  if (!r.ok) {
    say("error", `Couldn't load the order: ${problemText(r)}`);
    return;
  }
  show(r.data);
  if (location.hash === "#return" && !$("return-form").hidden) $("return-reason").focus();
}

init();
