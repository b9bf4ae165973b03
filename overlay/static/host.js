// The host console (/host/{stream}): camera (WHIP), go live / end, pins, flash deals, live
// auctions (start, open, cancel, the bid list), live counters, a preview of what viewers see, and the chat's moderation pane (moderation.js). Pins go over the room socket (fastest path,
// acked by `ref`); everything else, and a pin while the socket is down, goes over HTTP.

import { auctionView, view } from "./overlay.js";
import { createAuctionCard, updateAuctionCard } from "./auction.js";
import { HubClient, meta } from "./hub_client.js";
import {
  clock, createCard, money, setText, syncList, syncTicker, throttledText, updateCard,
} from "./cards.js";
import { api, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";
import { showStatus } from "./feed.js";
import { mountModeration } from "./moderation.js";
import { publishWhip, SignalError } from "./video.js";

const COUNTER_MS = 1000; // live counters change at most once a second (they are aria-live)
const MAX_PINNED = 3; // the server's default (LIVECART_MAX_PINNED); it has the last word

const $ = (id) => document.getElementById(id);
const streamId = meta("livecart-target");
const base = `/api/v1/streams/${encodeURIComponent(streamId)}`;
// Who this console speaks for: the token of a host link, or the signed-in account acting as
// the stream's creator, as one of its moderators (who see everything and change nothing), or
// as an operator. Without either it still shows the room, read-only.
const stream = await api("GET", base);
const creator = stream.ok ? stream.data.creator_id : "";
const access = await consoleAuth("livecart.token.creator", [`creator:${creator}`, `moderator:${creator}`]);
const auth = access.auth || {};
const readOnly = access.mode === "none" || (access.grant || "").startsWith("moderator:");

let state = null;
let refs = 0;
const pendingPins = new Map(); // ref -> product id

function banner(kind, text) {
  const node = $("banner");
  node.dataset.kind = kind;
  setText(node, text);
}

// Moderators moderate the chat too (the rest of the console is read-only for them).
const moderate = access.mode === "none" ? () => {}
  : mountModeration({ base, creator, auth, send: (message) => client.send(message),
    products: () => (state ? state.products : {}) });
$("chat-heading").closest("section").hidden = access.mode === "none";

const client = new HubClient(`${meta("livecart-ws")}/ws/streams/${encodeURIComponent(streamId)}`, {
  token: access.token || null,
  ticket: access.ticket,
  onState: (next) => {
    state = next;
    render();
  },
  onMessage: (message) => {
    moderate(message);
    if (String(message.type).startsWith("auction.")
      || (message.type === "state" && message.auction)) loadBids();
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

if (access.mode === "none") explainNoAccess($("banner"), access, "this stream's host console");
else if (readOnly) {
  banner("", `You moderate ${creator}'s streams: you see what the host sees and moderate the chat; `
    + "only the host pins, starts deals, goes live or ends the stream.");
}

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
  button.disabled = readOnly || !live || (!pinned && state.pinned.length >= MAX_PINNED);
  button.title = readOnly ? "Only the host pins products" : !live ? "Go live to pin products"
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
  goLive.hidden = readOnly || streamState !== "scheduled";
  if (goLive.getAttribute("aria-busy") !== "true") goLive.disabled = streamState !== "scheduled";
  const end = $("end");
  end.hidden = readOnly || streamState !== "live";
  if (end.getAttribute("aria-busy") !== "true") end.disabled = streamState !== "live";
  // Once the show is over, the next one is scheduled in the studio.
  const next = $("schedule-another");
  next.hidden = readOnly || (streamState !== "ended" && streamState !== "cancelled");
  next.href = `/studio/${encodeURIComponent(creator)}?again=${encodeURIComponent(streamId)}`;

  const currency = currencyOf(v);
  throttledText($("c-viewers"), v.viewers.toLocaleString(), COUNTER_MS);
  throttledText($("c-units"), state.sales.units.toLocaleString(), COUNTER_MS);
  throttledText($("c-orders"), state.sales.orders.toLocaleString(), COUNTER_MS);
  throttledText($("c-gmv"), money(state.sales.gmv_minor, currency), COUNTER_MS);
  throttledText($("c-likes"), v.likes.toLocaleString(), COUNTER_MS);

  syncList($("lineup"), v.tray, (c) => c.id, createRow, updateRow);
  $("lineup-empty").hidden = v.tray.length > 0;
  renderDealOptions(v);
  $("deal-submit").disabled = readOnly || streamState !== "live" || v.tray.length === 0;

  syncList($("preview-cards"), v.cards, (c) => c.id,
    (c) => createCard(c, { onBuy: () => {}, variant: "pinned" }), updateCard);
  $("preview-empty").hidden = v.cards.length > 0;
  syncTicker($("preview-ticker"), v.ticker, state.products, 2);
  syncTicker($("just-bought"), v.ticker, state.products, 10);
  renderCamera(v);
  renderAuction(v, streamState);
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
    ? await api("POST", `${base}/pins`, { ...auth, body: { product_id: productId } })
    : await api("DELETE", `${base}/pins/${encodeURIComponent(productId)}`, auth);
  button.removeAttribute("aria-busy");
  if (!r.ok) banner("error", problemText(r));
}

async function streamAction(button, path, done) {
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  const r = await api("POST", `${base}/${path}`, auth);
  button.removeAttribute("aria-busy");
  if (r.ok) banner("ok", done);
  else banner("error", problemText(r));
  render();
}

$("go-live").addEventListener("click", (event) => streamAction(event.currentTarget, "live", "You're live."));

// Ending is final: the first press arms the button, a second one within 4 s acts.
function twoPress(button, armedLabel, warning, action) {
  const label = button.textContent;
  let timer = null;
  button.addEventListener("click", () => {
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      setText(button, armedLabel);
      banner("", warning);
      timer = setTimeout(() => {
        button.dataset.armed = "false";
        setText(button, label);
      }, 4000);
      return;
    }
    clearTimeout(timer);
    button.dataset.armed = "false";
    setText(button, label);
    action();
  });
}

twoPress($("end"), "Press again to end",
  "Ending the stream closes checkout for every viewer. Press again to confirm.",
  () => streamAction($("end"), "end", "The stream has ended."));

// ---- camera: getUserMedia, a local preview, WHIP --------------------------------------------

let camera = null; // {media, session} while publishing
let cameraStarting = false;
const CAMERA_PILL = {
  off: ["off", "Off"], connecting: ["connecting", "Connecting…"], live: ["live", "On air"],
  reconnecting: ["reconnecting", "Reconnecting…"],
};

function renderCamera(v) {
  const over = state.stream.state === "ended" || state.stream.state === "cancelled";
  if (camera && over) cameraOff(); // the server has closed the session already
  const [kind, text] = cameraStarting ? CAMERA_PILL.connecting
    : !camera ? CAMERA_PILL.off : CAMERA_PILL[v.ingest] || CAMERA_PILL.connecting;
  const pill = $("camera-state");
  pill.dataset.state = kind;
  setText(pill, text);
  const start = $("camera-start");
  start.hidden = Boolean(camera);
  start.disabled = cameraStarting || over || readOnly;
  $("camera-stop").hidden = !camera;
}

function cameraOff() {
  if (!camera) return;
  const { media, session } = camera;
  camera = null;
  session.close();
  for (const track of media.getTracks()) track.stop();
  $("camera-preview").srcObject = null;
}

function cameraMessage(kind, text) {
  const status = $("camera-status");
  status.dataset.kind = kind;
  setText(status, text);
}

async function startCamera() {
  cameraStarting = true;
  render();
  $("camera-start").setAttribute("aria-busy", "true");
  let media = null;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } }, audio: true,
    });
    $("camera-preview").srcObject = media;
    const session = await publishWhip(`${base}/whip`, auth, media);
    camera = { media, session };
    session.onFailed(() => {
      cameraOff();
      cameraMessage("error", "The connection to the server dropped. Go live with camera again "
        + "right away and viewers keep watching.");
      render();
    });
    cameraMessage("", "Going live with the camera starts the stream; stopping it ends the stream.");
  } catch (error) {
    if (media) for (const track of media.getTracks()) track.stop();
    $("camera-preview").srcObject = null;
    cameraMessage("error", error instanceof SignalError ? `Couldn't publish: ${error.message}`
      : `Couldn't open the camera: ${error.message}`);
  } finally {
    cameraStarting = false;
    $("camera-start").removeAttribute("aria-busy");
    render();
  }
}

// Disabled in the template: enabled by the first render, once the room's state is in and
// this handler is wired (the module awaits the console's access first).
$("camera-start").addEventListener("click", startCamera);

// The server ends the stream when the host stops publishing.
twoPress($("camera-stop"), "Press again to stop",
  "Stopping the camera ends the stream for every viewer. Press again to confirm.", async () => {
    if (!camera) return;
    await camera.session.stop();
    cameraOff();
    render();
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
  const r = await api("POST", `${base}/deals`, { ...auth, body });
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

// ---- the live auction (auction.js) --------------------------------------------------------

const auctionCard = createAuctionCard({ idPrefix: "host-auction" });
$("auction-slot").append(auctionCard);

function renderAuction(v, streamState) {
  const label = (option, c) => setText(option, `${c.title} (${money(c.price_minor, c.currency)})`);
  syncList($("auction-product"), v.tray, (c) => c.id, (c) => {
    const option = document.createElement("option");
    option.value = c.id;
    label(option, c);
    return option;
  }, label);
  const card = v.tray.find((c) => c.id === $("auction-product").value);
  setText($("auction-start-hint"), `in ${card ? card.currency : "USD"}`);
  const a = auctionView(state, client.now());
  updateAuctionCard(auctionCard, a);
  const running = a !== null && (a.status === "scheduled" || a.status === "live");
  const submit = $("auction-submit");
  if (submit.getAttribute("aria-busy") !== "true") {
    submit.disabled = readOnly || running || v.tray.length === 0
      || !(streamState === "live" || (streamState === "scheduled" && !$("auction-open").checked));
  }
  submit.title = running ? "One auction at a time: this one runs until it closes" : "";
  $("auction-open-now").hidden = readOnly || !a || a.status !== "scheduled" || streamState !== "live";
  $("auction-cancel").hidden = readOnly || !running || a.bids > 0;
  if (a && a.id !== bidsOf) loadBids();
}

function auctionStatus(kind, text) {
  const node = $("auction-status");
  node.dataset.kind = kind;
  setText(node, text);
}

function toMinor(value, currency) {
  return Math.round(Number(value) * 10 ** digitsOf(currency));
}

$("auction-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const card = current && current.tray.find((c) => c.id === $("auction-product").value);
  if (!card) return;
  const start = toMinor($("auction-start").value, card.currency);
  const reserve = $("auction-reserve").value ? toMinor($("auction-reserve").value, card.currency) : 0;
  if (!(start >= 1)) {
    auctionStatus("error", "The starting price must be above zero.");
    $("auction-start").focus();
    return;
  }
  if (reserve && reserve < start) {
    auctionStatus("error", "The reserve can't be below the starting price.");
    $("auction-reserve").focus();
    return;
  }
  const body = {
    product_id: card.id, start_minor: start, reserve_minor: reserve,
    duration_s: Number($("auction-duration").value), format: $("auction-format").value,
    extend_s: Number($("auction-extend").value), open: $("auction-open").checked,
  };
  const submit = $("auction-submit");
  submit.disabled = true;
  submit.setAttribute("aria-busy", "true");
  const r = await api("POST", `${base}/auctions`, { ...auth, body });
  submit.removeAttribute("aria-busy");
  if (r.ok) {
    auctionStatus("ok", `${card.title} is up from ${money(start, card.currency)}`
      + (body.open ? ` for ${body.duration_s} s.` : ": pre-bids until you open it."));
  } else {
    auctionStatus("error", problemText(r));
  }
  render();
});

async function auctionAction(verb, done) {
  const a = state && state.auction;
  if (!a) return;
  const button = $(verb === "open" ? "auction-open-now" : "auction-cancel");
  button.disabled = true;
  const r = await api("POST", `${base}/auctions/${encodeURIComponent(a.auction)}/${verb}`, { ...auth });
  button.disabled = false;
  auctionStatus(r.ok ? "ok" : "error", r.ok ? done : problemText(r));
}

$("auction-open-now").addEventListener("click", () => auctionAction("open", "Bidding is open."));
$("auction-cancel").addEventListener("click", () => auctionAction("cancel", "Auction cancelled."));

// The bid list (the host's and the seller's): read again on each of the auction's events
// and each tick that brought bids, one read at a time.
let bidsOf = null;
let bidsBusy = false;
let bidsAgain = false;
const OUTCOMES = { high: "Leads", outbid: "Outbid", raised: "Raised own max" };

async function loadBids() {
  const a = state && state.auction;
  if (!a || access.mode === "none") return;
  if (bidsBusy) {
    bidsAgain = true;
    return;
  }
  bidsBusy = true;
  bidsOf = a.auction;
  const r = await api("GET", `${base}/auctions/${encodeURIComponent(a.auction)}/bids`, { ...auth });
  bidsBusy = false;
  if (r.ok && state.auction && state.auction.auction === a.auction) renderBids(r.data.items, a);
  if (bidsAgain) {
    bidsAgain = false;
    loadBids();
  }
}

function renderBids(items, a) {
  const currency = (state.products[a.product] || {}).currency || "USD";
  const rows = items; // newest first, as the API pages them
  syncList($("auction-bids"), rows, (b) => b.id, (b) => {
    const row = document.createElement("tr");
    const cells = [
      new Date(b.at_ms).toLocaleTimeString(), b.bidder, money(b.max_minor, currency),
      OUTCOMES[b.outcome] || `Refused: ${b.outcome}`, money(b.price_minor, currency),
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 2 || i === 4) td.className = "num";
      td.textContent = text;
      row.append(td);
    });
    return row;
  }, () => {});
  $("auction-bids-empty").hidden = rows.length > 0;
}

window.addEventListener("pagehide", () => {
  // Closing without a DELETE: the server waits for the host to come back (a reload) before
  // it ends the stream.
  if (camera) cameraOff();
  client.close();
});

tick();
