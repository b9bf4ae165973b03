// The replay page (/r/{stream}): an ended show's recording, and its overlay re-run at each
// picture's date. One read of GET /api/v1/streams/{id}/replay gives the show's sequenced
// events (each with `at_ms`, server time), its sales and its chat; the picture's date comes
// from the recording's EXT-X-PROGRAM-DATE-TIME (hls_play.js). The overlay of a moment is the
// live pages' own reducer (overlay.js) over the events up to that date, and over the state
// ticks live viewers were sent that the log does not hold (the stock as the room read it,
// the auctions' bids), so a seek re-derives it exactly. Cards offer today's price and stock (a replay buy, channel `replay`, is made on
// the product page); each says what it was at that moment.

import { api, problemText } from "./api.js";
import { createAuctionCard, updateAuctionCard } from "./auction.js";
import { createCard, money, setText, syncList, syncTicker, updateCard } from "./cards.js";
import { messageNode } from "./chat.js";
import { playHls } from "./hls_play.js";
import { meta } from "./hub_client.js";
import { auctionView, reduce, view } from "./overlay.js";

const $ = (id) => document.getElementById(id);
const streamId = meta("livecart-target");
const TICKER_WINDOW_MS = 10_000; // a sale shows in the ticker this long after it happened
const CHAT_SHOWN = 8;
const FRAMES_KEPT = 600; // the last pictures' (date, pinned), for tests and for debugging

// For tests: the last pictures' dates and what the overlay pinned for each, the pinned
// cards' "left then" and the auction card of the last; seeking by date.
const probe = { date: null, pinned: [], left: {}, auction: null, frames: [], seekToDate: (ms) => player && player.seekToDate(ms) };
window.__livecartReplay = probe;

function status(text, link = null) {
  const box = $("replay-status");
  box.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    box.append(" ", a);
  }
}

const r = await api("GET", `/api/v1/streams/${encodeURIComponent(streamId)}/replay`);
if (!r.ok) {
  setText($("stream-title"), "Replay");
  if (r.kind === "not-ended") status("This show isn't over yet.", { href: `/s/${encodeURIComponent(streamId)}`, text: "Watch it live" });
  else if (r.kind === "no-recording") status("This show has no recording.");
  else status(problemText(r));
  throw new Error("no replay"); // nothing more to do on this page
}
const data = r.data;
setText($("stream-title"), data.stream.title);
document.title = `${data.stream.title} (replay) · livecart`;

// ---- the overlay of a moment -------------------------------------------------------------
// Besides the events, the state ticks live viewers were sent that the log does not hold:
// the show's stock as its room read it (`stock_history`) and its auctions bid by bid
// (`bids`). One timeline by date, the events kept in log order (their dates come from
// several nodes' clocks: sorting them could put a seq before the one it follows).
const history = data.stock_history || [];
const ticks = [...history, ...(data.bids || [])].sort((x, y) => x.at_ms - y.at_ms);
const timeline = [];
for (let e = 0, t = 0; e < data.events.length || t < ticks.length;) {
  const event = data.events[e];
  if (t >= ticks.length || (event && event.at_ms <= ticks[t].at_ms)) {
    timeline.push(event);
    e += 1;
  } else {
    timeline.push(ticks[t]);
    t += 1;
  }
}
// Each product's first recorded levels: its stock before the room first read it (the show's
// start, or a history trimmed at its limit) is taken to be that.
const firstLevels = {};
for (const tick of history) {
  for (const [product, levels] of Object.entries(tick.stock)) {
    if (!(product in firstLevels)) firstLevels[product] = levels;
  }
}

// The state before the show's first logged event: the lineup, nothing pinned, no deal.
const base = {
  type: "snapshot", v: 1, seq: data.first_seq - 1,
  stream: { ...data.stream, state: "live", ingest: "live" },
  tray: data.tray, pinned: [], deals: {}, products: data.products,
  stock: { ...data.stock, ...firstLevels },
  deal_sold: {}, viewers: 0, likes: 0, sales: { units: 0, orders: 0, gmv_minor: 0 },
  just_bought: [], auction: null,
};
let state = reduce(null, base);
let applied = 0; // timeline entries folded into `state`
let foldedTo = -Infinity; // the date `state` is at

// The events and ticks up to `dateMs`, folded in order; going back starts again from the base.
function stateAt(dateMs) {
  if (dateMs < foldedTo) {
    state = reduce(null, base);
    applied = 0;
  }
  while (applied < timeline.length && timeline[applied].at_ms <= dateMs) {
    state = reduce(state, timeline[applied]);
    applied += 1;
  }
  foldedTo = dateMs;
  return state;
}

const total = (levels) => Object.values(levels || {}).reduce((a, b) => a + b, 0);

// What was left of a product then: what the room showed, from the recorded stock history.
// For a show recorded before the history was kept (or a product no hub read while it was
// live), an ESTIMATE: left now plus what the show sold of it since; restocks, released holds
// and sales elsewhere are not in the show's log.
function leftThen(product, s, dateMs) {
  if (product in firstLevels) return total(s.stock[product]);
  const soldSince = data.sales.filter((x) => x.product === product && x.at_ms > dateMs)
    .reduce((a, x) => a + x.qty, 0);
  return leftNow(product) + soldSince;
}

function leftNow(product) {
  return total(data.stock[product]);
}

// A card as the replay shows it: what one can buy today, and a line of how it was then.
function replayCard(then, s, dateMs) {
  const product = data.products[then.id];
  const left = leftNow(then.id);
  return {
    ...then, price_minor: product.price_minor, original_price_minor: null, deal: null,
    stock_left: left, badge: left <= 0 ? "sold out" : left <= 3 ? `only ${left} left` : "",
    can_buy: product.status === "active" && left > 0,
    then: { price_minor: then.price_minor, deal: then.deal, left: leftThen(then.id, s, dateMs) },
  };
}

function thenLine(card) {
  const line = document.createElement("p");
  line.className = "replay-then";
  updateThen(line, card);
  return line;
}

function updateThen(line, card) {
  const { then } = card;
  const deal = then.deal && then.deal.phase === "open" ? " (deal, ended)" : "";
  line.replaceChildren("In the show: ", Object.assign(document.createElement("b"), {
    textContent: `${money(then.price_minor, card.currency)}${deal}`,
  }), ` · ${then.left} left then, ${card.stock_left} now`);
}

function buyFromReplay(productId) {
  location.href = `/p/${encodeURIComponent(productId)}?replay=${encodeURIComponent(streamId)}`;
}

const auctionCard = createAuctionCard();
$("auction-slot").append(auctionCard);

function render(dateMs) {
  const s = stateAt(dateMs);
  const cards = view(s, dateMs).cards.map((c) => replayCard(c, s, dateMs));
  syncList($("pinned-cards"), cards, (c) => c.id, (c) => {
    const node = createCard(c, { onBuy: buyFromReplay });
    node.append(thenLine(c));
    return node;
  }, (node, c) => {
    updateCard(node, c);
    updateThen(node.querySelector(".replay-then"), c);
  });
  $("pinned-empty").hidden = cards.length > 0;
  const sales = data.sales.filter((x) => x.at_ms <= dateMs && x.at_ms > dateMs - TICKER_WINDOW_MS)
    .reverse().map((x, i) => ({ ...x, order: x.order || `${x.at_ms}-${i}` }));
  syncTicker($("ticker"), sales, data.products);
  const said = data.chat.filter((m) => m.at_ms <= dateMs).slice(-CHAT_SHOWN);
  syncList($("chat-list"), said, (m) => m.id, messageNode, () => {});
  const auction = auctionView(s, dateMs);
  updateAuctionCard(auctionCard, auction);
  setText($("replay-clock"), clockText(dateMs));
  for (const item of document.querySelectorAll(".timeline-item")) {
    item.dataset.now = String(s.pinned.includes(item.dataset.key));
  }
  probe.date = dateMs;
  probe.pinned = [...s.pinned];
  probe.left = Object.fromEntries(cards.map((c) => [c.id, c.then.left]));
  probe.auction = auction && { bids: auction.bids, price_minor: auction.price_minor,
    high_paddle: auction.high_paddle, status: auction.status };
  probe.frames.push([dateMs, s.pinned.join(",")]);
  if (probe.frames.length > FRAMES_KEPT) probe.frames.shift();
}

// ---- the player and the product timeline ------------------------------------------------
let player = null;
let firstDate = null; // the recording's first picture's date: the timeline's 0:00

function clockText(dateMs) {
  if (firstDate === null) return "";
  const s = Math.max(0, Math.floor((dateMs - firstDate) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// Each product the show pinned, with every moment it went up (newly in `pinned`).
function moments() {
  const shown = new Map();
  let before = [];
  for (const e of data.events) {
    if (!Array.isArray(e.pinned)) continue;
    for (const p of e.pinned) {
      if (before.includes(p) || !data.products[p]) continue;
      if (!shown.has(p)) shown.set(p, []);
      shown.get(p).push(e.at_ms);
    }
    before = e.pinned;
  }
  return shown;
}

function timelineItem([product, times]) {
  const card = data.products[product];
  const item = document.createElement("li");
  item.className = "timeline-item";
  const title = document.createElement("p");
  title.className = "timeline-title";
  title.textContent = card.title;
  const price = document.createElement("p");
  price.className = "timeline-price";
  const left = leftNow(product);
  price.textContent = `${money(card.price_minor, card.currency)} today · ${left > 0 ? `${left} left` : "sold out"}`;
  const buy = document.createElement("a");
  buy.className = "btn btn-small timeline-buy";
  buy.href = `/p/${encodeURIComponent(product)}?replay=${encodeURIComponent(streamId)}`;
  buy.textContent = "Buy";
  buy.setAttribute("aria-label", `Buy ${card.title}`);
  const list = document.createElement("div");
  list.className = "timeline-moments";
  for (const at of times) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "moment-btn";
    b.dataset.at = String(at);
    b.textContent = clockText(at) || "…";
    b.setAttribute("aria-label", `Jump to ${card.title} at ${b.textContent}`);
    b.addEventListener("click", () => {
      if (player) player.seekToDate(at);
      $("video").play().catch(() => {});
    });
    list.append(b);
  }
  item.append(title, buy, price, list);
  return item;
}

const shown = moments();
function drawTimeline() {
  syncList($("timeline-list"), [...shown], ([p]) => p, timelineItem, (node, entry) => {
    for (const b of node.querySelectorAll(".moment-btn")) {
      b.textContent = clockText(Number(b.dataset.at)) || "…";
    }
  });
}
drawTimeline();
if (!shown.size) status("No product was pinned in this show.");

try {
  player = await playHls(data.hls_url, $("video"), {
    onPicture: (dateMs) => {
      if (firstDate === null) {
        const span = player && player.span();
        if (span) {
          firstDate = span.first;
          drawTimeline();
        }
      }
      render(dateMs);
    },
    onFatal: (why) => status(`The recording cannot be played (${why}).`),
  });
} catch (error) {
  status(`The recording cannot be played here: ${error.message}.`);
}
