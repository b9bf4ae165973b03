// The brand's Orders page (/brand/{brand}/orders): every order of its products, newest
// first, filtered by state or stream; an open order shows its buyer, where it ships (as at
// purchase), its refunds and return, and the moves it allows: mark shipped (carrier,
// tracking), delivered, refund an amount or in full, approve or reject a return, cancel.

import { meta } from "./hub_client.js";
import { money, setText } from "./cards.js";
import { api, newKey, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";

const $ = (id) => document.getElementById(id);
const brandId = meta("livecart-target");
const PAGE = 25;
const access = await consoleAuth("livecart.token.brand", [`brand:${brandId}`]);
const auth = access.auth || {};
const orders = new Map();
let cursor = 0;
let openId = null;

const STATE_WORDS = {
  authorized: "Awaiting capture", paid: "Paid", shipped: "Shipped", delivered: "Delivered",
  refunded: "Refunded", voided: "Voided", cancelled: "Cancelled",
};
const RETURN_WORDS = {
  requested: "Requested", approved: "Approved, refund under way", rejected: "Rejected",
  refunded: "Refunded",
};

function banner(kind, text) {
  const node = $("banner");
  node.dataset.kind = kind;
  setText(node, text);
}

function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = text;
  return node;
}

/** "12.50" in the order's currency -> 1250 minor units; null when empty; NaN when bad. */
function minorOf(text, currency) {
  const value = text.trim();
  if (!value) return null;
  const digits = new Intl.NumberFormat("en", { style: "currency", currency })
    .resolvedOptions().maximumFractionDigits;
  const match = value.match(/^(\d{1,12})(?:[.,](\d+))?$/);
  if (!match || (match[2] || "").length > digits) return NaN;
  const minor = Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || 0);
  return minor > 0 ? minor : NaN;
}

// ---- the list ---------------------------------------------------------------------------

function query() {
  const params = new URLSearchParams({ limit: String(PAGE), cursor: String(cursor) });
  if ($("filter-state").value) params.set("state", $("filter-state").value);
  if ($("filter-stream").value.trim()) params.set("stream", $("filter-stream").value.trim());
  return params;
}

function row(order) {
  const tr = document.createElement("tr");
  tr.dataset.key = order.id;
  const title = el("td");
  title.append(el("span", order.title || order.product, "row-title"), el("span", order.id, "row-id"));
  const state = el("td", STATE_WORDS[order.state] || order.state);
  state.dataset.state = order.state;
  if (order.return_state === "requested") state.append(el("span", " · return requested"));
  const open = el("button", "Open", "btn btn-secondary btn-small");
  open.type = "button";
  open.setAttribute("aria-label", `Open order ${order.id}`);
  open.addEventListener("click", () => show(order.id, true));
  const action = el("td");
  action.append(open);
  tr.append(title, el("td", order.buyer_name || order.buyer), state,
    el("td", money(order.amount_minor, order.currency), "num"),
    el("td", order.refunded_minor ? money(order.refunded_minor, order.currency) : "—", "num"),
    action);
  return tr;
}

async function load(reset) {
  if (reset) {
    cursor = 0;
    orders.clear();
    $("orders").replaceChildren();
  }
  $("more").disabled = true;
  const r = await api("GET", `/api/v1/brands/${encodeURIComponent(brandId)}/orders?${query()}`, auth);
  $("more").disabled = false;
  if (!r.ok) {
    banner("error", `Couldn't load the orders: ${problemText(r)}`);
    return;
  }
  for (const order of r.data.items) {
    orders.set(order.id, order);
    $("orders").append(row(order));
  }
  if (!orders.size) {
    const empty = el("tr", "", "empty-row");
    const cell = el("td", "No orders match.");
    cell.colSpan = 6;
    empty.append(cell);
    $("orders").append(empty);
  }
  cursor = r.data.next_cursor;
  $("more").hidden = cursor === null;
}

function replace(order) {
  orders.set(order.id, order);
  const old = $("orders").querySelector(`tr[data-key="${CSS.escape(order.id)}"]`);
  if (old) old.replaceWith(row(order));
  show(order.id);
}

// ---- one order --------------------------------------------------------------------------

function show(id, focus = false) {
  const order = orders.get(id);
  openId = id;
  const cur = order.currency;
  setText($("detail-title"), `${order.title || order.product} · ${order.qty} × ${money(order.unit_price_minor, cur)}`);
  setText($("detail-state"), STATE_WORDS[order.state] || order.state);
  $("detail-state").dataset.state = order.state;
  setText($("d-buyer"), [order.buyer_name, order.buyer_email].filter(Boolean).join(" · ") || order.buyer);
  const to = order.ship_to;
  setText($("d-ship"), to ? [to.name, to.line1, to.line2, `${to.postal_code} ${to.city}`, to.country]
    .filter(Boolean).join(", ") : "—");
  setText($("d-line"), `${order.qty} × ${money(order.unit_price_minor, cur)}${order.variant !== "default" ? ` (${order.variant_name || order.variant})` : ""}`);
  setText($("d-total"), money(order.amount_minor, cur));
  setText($("d-refunded"), money(order.refunded_minor || 0, cur));
  setText($("d-tracking"), order.tracking ? `${order.carrier} · ${order.tracking}` : "—");
  setText($("d-return"), order.return_state
    ? `${RETURN_WORDS[order.return_state] || order.return_state}: ${order.return_reason}` : "—");
  setText($("d-id"), order.id);
  $("d-refunds").replaceChildren(...(order.refunds || []).map((r) => {
    const li = el("li", "", "ledger-item");
    li.append(el("span", `Refund ${r.n}${r.restock ? " (restocked)" : ""}: ${r.state}`, "ledger-what"),
      el("span", money(-r.amount_minor, cur), "ledger-amount"));
    return li;
  }));
  const remaining = order.amount_minor - (order.refunded_minor || 0) - (order.refund_pending_minor || 0);
  const captured = ["paid", "shipped", "delivered"].includes(order.state);
  $("ship-form").hidden = !["authorized", "paid"].includes(order.state);
  $("deliver").hidden = order.state !== "shipped";
  $("refund-form").hidden = !captured || remaining <= 0 || order.return_state === "requested";
  $("return-form").hidden = order.return_state !== "requested";
  setText($("return-reason"), order.return_reason || "");
  $("cancel").hidden = !["reserved", "authorized", "paid"].includes(order.state);
  $("detail").hidden = false;
  if (focus) $("detail-title").focus();
}

async function act(path, body, { key = false, done }) {
  const headers = key ? { "Idempotency-Key": newKey() } : {};
  const r = await api("POST", `/api/v1/orders/${encodeURIComponent(openId)}/${path}`,
    { ...auth, body, headers });
  if (!r.ok) {
    banner("error", problemText(r));
    return;
  }
  replace(r.data);
  banner("ok", r.status === 202 ? "Refund asked; the payment gateway has not answered yet." : done);
}

function amountOf(input) {
  const order = orders.get(openId);
  const minor = minorOf(input.value, order.currency);
  if (Number.isNaN(minor)) {
    banner("error", "Enter an amount such as 12.50, or leave it empty for all that remains.");
    return undefined;
  }
  return minor;
}

$("ship-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act("ship", { carrier: $("ship-carrier").value.trim(), tracking_number: $("ship-tracking").value.trim() },
    { done: "Marked shipped." });
});

$("deliver").addEventListener("click", () => act("deliver", undefined, { done: "Marked delivered." }));

$("refund-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = amountOf($("refund-amount"));
  if (amount === undefined) return;
  const body = { restock: $("refund-restock").checked };
  if (amount !== null) body.amount_minor = amount;
  $("refund-amount").value = "";
  act("refund", body, { key: true, done: "Refunded." });
});

$("return-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = amountOf($("return-amount"));
  if (amount === undefined) return;
  const body = { approve: true, restock: $("return-restock").checked };
  if (amount !== null) body.amount_minor = amount;
  act("return", body, { done: "Return approved and refunded." });
});

$("return-reject").addEventListener("click", () => act("return", { approve: false },
  { done: "Return rejected." }));

$("cancel").addEventListener("click", () => act("cancel", undefined, { done: "Order cancelled." }));

$("filter").addEventListener("submit", (event) => {
  event.preventDefault();
  $("detail").hidden = true;
  load(true);
});

$("more").addEventListener("click", () => load(false));

async function init() {
  if (access.mode === "none") {
    explainNoAccess($("banner"), access, "this brand's orders");
    return;
  }
  const r = await api("GET", `/api/v1/brands/${encodeURIComponent(brandId)}`);
  if (r.ok) {
    setText($("brand-name"), r.data.name || brandId);
    document.title = `Orders · ${r.data.name || brandId} · livecart`;
  }
  await load(true);
}

init();
