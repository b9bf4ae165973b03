// The host console (/host/{stream}): go live / end, pins, flash deals, live counters and a
// preview of what viewers see. Pins go over the room socket (fastest path, acked by `ref`);
// everything else, and a pin while the socket is down, goes over HTTP.

import { view } from "./overlay.js";
import { HubClient, meta, pageToken } from "./hub_client.js";
import {
  clock, createCard, money, setText, syncList, syncTicker, throttledText, updateCard,
} from "./cards.js";
import { api, problemText } from "./api.js";
import { showStatus } from "./feed.js";

const COUNTER_MS = 1000; // live counters change at most once a second (they are aria-live)
const MAX_PINNED = 3; // the server's default (LIVECART_MAX_PINNED); it has the last word

const $ = (id) => document.getElementById(id);
const streamId = meta("livecart-target");
const token = pageToken("livecart.token.creator");
const base = `/api/v1/streams/${encodeURIComponent(streamId)}`;

let state = null;
let refs = 0;
const pendingPins = new Map(); // ref -> product id

function banner(kind, text) {
  const node = $("banner");
  node.dataset.kind = kind;
  setText(node, text);
}

const client = new HubClient(`${meta("livecart-ws")}/ws/streams/${encodeURIComponent(streamId)}`, {
  token,
  onState: (next) => {
    state = next;
    render();
  },
  onMessage: (message) => {
    if ((message.type === "ack" || message.type === "error") && pendingPins.has(message.ref)) {
      const product = pendingPins.get(message.ref);
      pendingPins.delete(message.ref);
      if (message.type === "error") banner("error", message.message || message.code);
      const button = document.querySelector(`tr[data-key="${CSS.escape(product)}"] .pin-btn`);
      if (button) button.removeAttribute("aria-busy");
      render();
    }
  },
  onStatus: (status) => {
    showStatus($("conn"), status);
    if (status === "closed 4010") render();
  },
});

if (!token) banner("error", "Open this console from your host link (it carries your sign-in token).");

function currencyOf(v) {
  return v.tray.length ? v.tray[0].currency : "USD";
}

// ---- rendering --------------------------------------------------------------------------

function cell(row, className) {
  const td = document.createElement("td");
  td.className = className;
  row.append(td);
  return td;
}

function createRow(card) {
  const row = document.createElement("tr");
  const product = cell(row, "col-product");
  const title = document.createElement("span");
  title.className = "row-title";
  const id = document.createElement("span");
  id.className = "row-id";
  product.append(title, id);
  const price = cell(row, "col-price");
  const now = document.createElement("span");
  now.className = "price-now";
  const was = document.createElement("s");
  was.className = "price-was";
  price.append(now, " ", was);
  cell(row, "col-left");
  cell(row, "col-deal");
  const action = cell(row, "col-pin");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn btn-small pin-btn";
  const label = document.createElement("span");
  label.className = "pin-label";
  const hidden = document.createElement("span");
  hidden.className = "visually-hidden pin-title";
  button.append(label, hidden);
  button.addEventListener("click", () => togglePin(row.dataset.key, button));
  action.append(button);
  updateRow(row, card);
  return row;
}

function updateRow(row, card) {
  const pinned = state.pinned.includes(card.id);
  row.classList.toggle("is-pinned", pinned);
  setText(row.querySelector(".row-title"), card.title);
  setText(row.querySelector(".row-id"), card.id);
  setText(row.querySelector(".price-now"), money(card.price_minor, card.currency));
  const was = row.querySelector(".price-was");
  was.hidden = card.original_price_minor == null;
  if (!was.hidden) setText(was, money(card.original_price_minor, card.currency));
  const left = row.querySelector(".col-left");
  setText(left, card.stock_left <= 0 ? "Sold out" : String(card.stock_left));
  left.dataset.level = card.stock_left <= 0 ? "out" : card.badge.startsWith("only") ? "low" : "";
  const deal = card.deal;
  setText(row.querySelector(".col-deal"), !deal ? "—"
    : deal.phase === "upcoming" ? `opens in ${clock(deal.seconds_left)}`
      : `${clock(deal.seconds_left)} left · ${deal.units_left} units`);
  const button = row.querySelector(".pin-btn");
  const live = state.stream.state === "live";
  button.setAttribute("aria-pressed", String(pinned));
  button.classList.toggle("btn-secondary", pinned);
  button.disabled = !live || (!pinned && state.pinned.length >= MAX_PINNED);
  button.title = !live ? "Go live to pin products"
    : button.disabled ? `At most ${MAX_PINNED} pinned: unpin one first` : "";
  setText(button.querySelector(".pin-label"), pinned ? "Unpin" : "Pin");
  setText(button.querySelector(".pin-title"), ` ${card.title}`);
}

function renderDealOptions(v) {
  const select = $("deal-product");
  const chosen = select.value;
  syncList(select, v.tray, (c) => c.id, (c) => {
    const option = document.createElement("option");
    option.value = c.id;
    return option;
  }, () => {});
  for (const option of select.options) {
    const card = v.tray.find((c) => c.id === option.value);
    const regular = card.original_price_minor ?? card.price_minor;
    setText(option, `${card.title} (${money(regular, card.currency)})`);
  }
  if (chosen && v.tray.some((c) => c.id === chosen)) select.value = chosen;
  updatePriceHint(v);
}

function updatePriceHint(v) {
  const card = v.tray.find((c) => c.id === $("deal-product").value);
  if (!card) return;
  const regular = card.original_price_minor ?? card.price_minor;
  setText($("deal-price-hint"), `in ${card.currency}, below ${money(regular, card.currency)}`);
}

let current = null;

function render() {
  if (!state) return;
  const v = view(state, client.now());
  current = v;
  const streamState = state.stream.state;
  setText($("stream-title"), state.stream.title);
  const pill = $("state-pill");
  pill.dataset.state = streamState;
  setText(pill, streamState === "live" ? "Live" : streamState.charAt(0).toUpperCase() + streamState.slice(1));
  const goLive = $("go-live");
  goLive.hidden = streamState !== "scheduled";
  if (goLive.getAttribute("aria-busy") !== "true") goLive.disabled = streamState !== "scheduled";
  const end = $("end");
  end.hidden = streamState !== "live";
  if (end.getAttribute("aria-busy") !== "true") end.disabled = streamState !== "live";

  const currency = currencyOf(v);
  throttledText($("c-viewers"), v.viewers.toLocaleString(), COUNTER_MS);
  throttledText($("c-units"), state.sales.units.toLocaleString(), COUNTER_MS);
  throttledText($("c-orders"), state.sales.orders.toLocaleString(), COUNTER_MS);
  throttledText($("c-gmv"), money(state.sales.gmv_minor, currency), COUNTER_MS);
  throttledText($("c-likes"), v.likes.toLocaleString(), COUNTER_MS);

  syncList($("lineup"), v.tray, (c) => c.id, createRow, updateRow);
  $("lineup-empty").hidden = v.tray.length > 0;
  renderDealOptions(v);
  $("deal-submit").disabled = streamState !== "live" || v.tray.length === 0;

  syncList($("preview-cards"), v.cards, (c) => c.id,
    (c) => createCard(c, { onBuy: () => {}, variant: "pinned" }), updateCard);
  $("preview-empty").hidden = v.cards.length > 0;
  syncTicker($("preview-ticker"), v.ticker, state.products, 2);
  syncTicker($("just-bought"), v.ticker, state.products, 10);
}

function tick() {
  render();
  setTimeout(tick, 1000 - (client.now() % 1000) + 5);
}

// ---- actions ----------------------------------------------------------------------------

async function togglePin(productId, button) {
  if (!state || !productId) return;
  const pin = !state.pinned.includes(productId);
  button.setAttribute("aria-busy", "true");
  banner("", "");
  refs += 1;
  const ref = `pin-${refs}`;
  if (client.send({ type: pin ? "pin" : "unpin", product_id: productId, ref })) {
    pendingPins.set(ref, productId);
    return;
  }
  const r = pin
    ? await api("POST", `${base}/pins`, { token, body: { product_id: productId } })
    : await api("DELETE", `${base}/pins/${encodeURIComponent(productId)}`, { token });
  button.removeAttribute("aria-busy");
  if (!r.ok) banner("error", problemText(r));
}

async function streamAction(button, path, done) {
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  const r = await api("POST", `${base}/${path}`, { token });
  button.removeAttribute("aria-busy");
  if (r.ok) banner("ok", done);
  else banner("error", problemText(r));
  render();
}

$("go-live").addEventListener("click", (event) => streamAction(event.currentTarget, "live", "You're live."));

// Ending is final: the first press arms the button, a second one within 4 s ends the stream.
let endTimer = null;
$("end").addEventListener("click", (event) => {
  const button = event.currentTarget;
  if (button.dataset.armed !== "true") {
    button.dataset.armed = "true";
    setText(button, "Press again to end");
    banner("", "Ending the stream closes checkout for every viewer. Press again to confirm.");
    endTimer = setTimeout(() => {
      button.dataset.armed = "false";
      setText(button, "End stream");
    }, 4000);
    return;
  }
  clearTimeout(endTimer);
  button.dataset.armed = "false";
  setText(button, "End stream");
  streamAction(button, "end", "The stream has ended.");
});

$("deal-product").addEventListener("change", () => {
  if (current) updatePriceHint(current);
});

function digitsOf(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

$("deal-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("deal-status");
  const card = current && current.tray.find((c) => c.id === $("deal-product").value);
  if (!card) return;
  const regular = card.original_price_minor ?? card.price_minor;
  const priceMinor = Math.round(Number($("deal-price").value) * 10 ** digitsOf(card.currency));
  if (!(priceMinor >= 1) || priceMinor >= regular) {
    status.dataset.kind = "error";
    setText(status, `The deal price must be above zero and below ${money(regular, card.currency)}.`);
    $("deal-price").focus();
    return;
  }
  const body = {
    product_id: card.id,
    price_minor: priceMinor,
    quantity: Number($("deal-quantity").value),
    per_buyer_limit: Number($("deal-limit").value),
    countdown_s: Number($("deal-countdown").value),
    duration_s: Number($("deal-duration").value),
  };
  const submit = $("deal-submit");
  submit.disabled = true;
  submit.setAttribute("aria-busy", "true");
  const r = await api("POST", `${base}/deals`, { token, body });
  submit.removeAttribute("aria-busy");
  submit.disabled = false;
  if (r.ok) {
    status.dataset.kind = "ok";
    setText(status, `Deal on ${card.title}: ${money(priceMinor, card.currency)} for ${body.quantity} units, `
      + `opens in ${body.countdown_s} s.`);
  } else {
    status.dataset.kind = "error";
    setText(status, problemText(r));
  }
});

window.addEventListener("pagehide", () => client.close());

tick();
