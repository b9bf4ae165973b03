// The viewer page (/s/{stream}): video, pinned cards, tray, ticker, likes, chat and
// reactions, one-tap checkout.

import { auctionView, view } from "./overlay.js";
import { createAuctionCard, mountBidding, updateAuctionCard } from "./auction.js";
import { backoffMs, HubClient, meta, pageToken } from "./hub_client.js";
import {
  clock, compact, createCard, dealText, money, setText, syncList, syncTicker, throttledText,
  updateCard,
} from "./cards.js";
import { api, newKey, pageSession, problemText, signinHref } from "./api.js";
import { payConfirmed } from "./passkey.js";
import { mountCardForm } from "./card_form.js";
import { addressLine, cardLine, loadWallet, mountAddressForm, saveCard } from "./wallet_forms.js";
import { showStatus } from "./feed.js";
import { playWhep, SignalError, SyncGate } from "./video.js";
import { playHls } from "./hls_play.js";
import {
  CHAT_ERRORS, ChatList, chatInitial, chatReduce, claimHint, claimNote, floatReactions,
  reactionDeltas, REACTIONS, refusalText, settingsText,
} from "./chat.js";

const $ = (id) => document.getElementById(id);
const streamId = meta("livecart-target");
const token = pageToken("livecart.token.buyer");
// Without a token in the URL, the page's session (signed in at /signin), if there is one:
// its cookie authenticates the API calls, with its CSRF token on changes.
const sessionReady = token ? Promise.resolve(null) : pageSession();
let session = null;
sessionReady.then((s) => {
  session = s;
});
const auth = () => (token ? { token } : { csrf: session ? session.csrf : null });
const signedIn = () => Boolean(token || session);

// The hub socket of a signed-in page: a fresh short-lived ticket before each connection.
async function hubTicket() {
  const current = await sessionReady;
  if (!current || !session) return null;
  const r = await api("POST", "/auth/ticket", { csrf: session.csrf });
  return r.ok ? r.data.ticket : null;
}
const base = `/api/v1/streams/${encodeURIComponent(streamId)}`;

const COUNTER_MS = 2000; // live counters change at most this often (they are aria-live)

let state = null;
let current = null; // the last view()

// Hub messages go through the gate, which hands each event on when the picture shows it.
class SyncedHubClient extends HubClient {
  connect() {
    // A resume replays from the state's seq, so the gate must take those events again
    // (after a gap the reducer asked for exactly that).
    gate.resume(this.state ? this.state.seq : 0);
    super.connect();
  }

  receive(message) {
    gate.hub(message);
  }

  deliver(message) {
    super.receive(message);
  }
}

const gate = new SyncGate((message) => client.deliver(message));
window.__livecartVideo = gate.stats; // for the tests and the skew benchmark

const client = new SyncedHubClient(`${meta("livecart-ws")}/ws/streams/${encodeURIComponent(streamId)}`, {
  token,
  ticket: token ? null : hubTicket,
  onState: (next) => {
    state = next;
    render();
  },
  onMessage: (message) => onChat(message),
  onStatus: (status) => showStatus($("conn"), status),
});

// ---- the room ---------------------------------------------------------------------------

function cardOf(productId) {
  if (!current) return null;
  return current.tray.find((c) => c.id === productId) || current.cards.find((c) => c.id === productId) || null;
}

// How far behind the room the picture on screen is (ms): an HLS player's seconds, 0 on
// WebRTC (a frame or two, which the gate already holds events for). Deals count down on the
// picture's time, and a buy says how far behind it was: the server keeps the deal open for
// this viewer as long as their screen shows it (docs/checkout.md "A deal on every screen").
let pictureDelayMs = 0;
const DEAL_DELAY_MAX_MS = 10_000;

function render() {
  if (!state) return;
  const v = view(state, client.now() - pictureDelayMs);
  current = v;
  const pill = $("live-pill");
  pill.dataset.live = String(v.live);
  setText(pill, v.live ? "Live" : state.stream.state === "ended" ? "Ended" : "Offline");
  setText($("stream-title"), state.stream.title);
  if (document.title !== `${state.stream.title} · livecart`) document.title = `${state.stream.title} · livecart`;
  throttledText($("viewers"), compact(v.viewers), COUNTER_MS);
  throttledText($("likes"), compact(v.likes + pendingLikes), COUNTER_MS);

  const cards = v.cards.map(withCode);
  const tray = v.tray.map(withCode);
  syncList($("pinned"), cards, (c) => c.id,
    (c) => watchCard(createCard(c, { onBuy: tapCard, variant: "pinned" })), updateCard);
  $("empty-note").hidden = v.cards.length > 0 || !v.live;
  setText($("tray-count"), String(v.tray.length));
  syncList($("tray-list"), tray, (c) => c.id,
    (c) => watchCard(createCard(c, { onBuy: tapCard, variant: "row" })), updateCard);
  renderClaimHint();
  sendSeen();
  syncTicker($("ticker"), v.ticker, state.products);
  renderAuction();
  if (sheet.open) renderSheet();
  syncVideo(v);
  resumeBuy();
  offerReplay();
}

// An ended show turns into its replay (/r/{stream}, when it was recorded: the stream's
// `replay_url`): a page opened on it goes there; a viewer watching when it ended is offered it.
let replayAsked = false;
let openedLive = null; // whether the show was live when this page first drew it
async function offerReplay() {
  if (openedLive === null) openedLive = state.stream.state !== "ended";
  if (replayAsked || state.stream.state !== "ended") return;
  replayAsked = true;
  const r = await api("GET", base);
  if (!r.ok || !r.data.replay_url) return;
  const href = r.data.replay_url;
  if (!openedLive) {
    location.replace(href);
    return;
  }
  $("replay-link").href = href;
  $("replay-note").hidden = false;
}

// A card with its show code (comment-to-buy: the snapshot's `stream.codes`, kept current by
// each `lineup.changed`).
function withCode(c) {
  const codes = (state && state.stream.codes) || {};
  return { ...c, code: Number.isInteger(codes[c.id]) ? codes[c.id] : null };
}

// Back from signing in (`?buy=<product>`): the sheet opens again for that product, once.
let resumed = false;
function resumeBuy() {
  if (resumed || !pendingBuy || !cardOf(pendingBuy)) return;
  resumed = true;
  history.replaceState(null, "", location.pathname + location.hash);
  sessionReady.then(() => {
    if (signedIn()) openSheet(pendingBuy);
  });
}

// ---- the live auction (auction.js) --------------------------------------------------------
// The page's paddle in each auction it bid in, from the bid's answer (kept for the tab).
// It counts once the card has the bid (its `bids` count reached the answer's): before, the
// card would compare the new paddle with the old leader and say "outbid" for a moment.
const PADDLES_KEY = "livecart.auction.paddles";
const paddles = JSON.parse(sessionStorage.getItem(PADDLES_KEY) || "{}");
let pendingPaddles = []; // [{auction, paddle, bids}]
const auctionCard = createAuctionCard({ bidding: true });
$("auction-slot").append(auctionCard);
let auctionNow = null; // the last auctionView()

function renderAuction() {
  const shown = (p) => !state.auction || state.auction.auction !== p.auction
    || p.bids <= state.auction.bids;
  const due = pendingPaddles.filter(shown);
  pendingPaddles = pendingPaddles.filter((p) => !shown(p));
  for (const p of due) paddles[p.auction] = p.paddle;
  if (due.length) sessionStorage.setItem(PADDLES_KEY, JSON.stringify(paddles));
  const id = state.auction ? state.auction.auction : null;
  auctionNow = auctionView(state, client.now(), id && Number.isInteger(paddles[id]) ? paddles[id] : null);
  updateAuctionCard(auctionCard, auctionNow, { signedIn: signedIn(), signinHref: signinHref() });
}

mountBidding(auctionCard, {
  base, auth, current: () => auctionNow,
  onPaddle: (auction, paddle, bids) => {
    pendingPaddles.push({ auction, paddle, bids: Number.isInteger(bids) ? bids : 0 });
    render();
  },
});
sessionReady.then(() => render());

// Countdowns move on server time: redraw on each server-clock second.
function tick() {
  render();
  setTimeout(tick, 1000 - (client.now() % 1000) + 5);
}

// ---- video: WHEP while the stream has a publisher, HLS past the node's capacity ---------
// WebRTC first (sub-second). A node that is full (503), a connection that fails, or no
// picture within WHEP_PICTURE_MS puts the page on the show's HLS playlist for good (served
// by the node, cacheable by any CDN in front); #video's data-path says which ("webrtc",
// "hls", "none") and the HLS badge shows it.

const video = $("video");
// No answer, no publisher on this node yet, too many sessions from this address.
const VIDEO_RETRY = new Set([0, 404, 429]);
const WHEP_PICTURE_MS = 10000;
const HLS_URL = `/hls/${encodeURIComponent(streamId)}/index.m3u8`;
let playback = null; // the WHEP session or the HLS player
let videoWanted = false;
let videoStarting = false;
let videoAttempt = 0;
let videoTimer = null;
let hlsOnly = false; // WebRTC was refused or failed: this page stays on HLS
let pictureTimer = null;

function setPath(path, engine = "") {
  video.dataset.path = path;
  video.dataset.engine = engine;
  $("hls-badge").hidden = path !== "hls";
}
setPath("none");

function syncVideo(v) {
  $("video-note").hidden = !(v.live && v.ingest === "reconnecting");
  $("unmute").hidden = !playback || !video.muted;
  const wanted = v.live && v.ingest !== "none";
  if (wanted === videoWanted) return;
  videoWanted = wanted;
  videoAttempt = 0;
  if (wanted) startVideo();
  else videoGone(); // the server closes its side of every session when the video ends
}

async function startVideo() {
  clearTimeout(videoTimer);
  if (!videoWanted || playback || videoStarting) return;
  if (hlsOnly) {
    startHls();
    return;
  }
  videoStarting = true;
  gate.attach();
  let pictured = false;
  try {
    playback = await playWhep(`${base}/whep`, video, {
      onMessage: onChannel,
      onFrame: (metadata) => {
        pictured = true;
        gate.frame(metadata);
      },
    });
  } catch (error) {
    gate.detach();
    if (error instanceof SignalError && VIDEO_RETRY.has(error.status)) retryVideo();
    else if (!(error instanceof SignalError) || error.status === 503) toHls();
    else console.warn(`live video unavailable: ${error.message}`); // the overlay works without
    return;
  } finally {
    videoStarting = false;
  }
  videoAttempt = 0;
  setPath("webrtc");
  const session = playback;
  session.onFailed(() => {
    videoGone();
    toHls();
  });
  // A session with no picture (media blocked on the way): HLS, unless the host is away.
  const checkPicture = () => {
    if (playback !== session || pictured) return;
    if (!state || state.stream.ingest !== "live") pictureTimer = setTimeout(checkPicture, WHEP_PICTURE_MS);
    else {
      videoGone();
      toHls();
    }
  };
  pictureTimer = setTimeout(checkPicture, WHEP_PICTURE_MS);
  if (!videoWanted) videoGone();
  render();
}

function toHls() {
  hlsOnly = true;
  videoAttempt = 0;
  clearTimeout(videoTimer);
  videoTimer = setTimeout(startVideo, 0); // after the failed start has unwound
}

// The media time (90 kHz) of a wall-clock date, on the clock whose 0 was at `originMs`.
const ticks = (ms, originMs) => Math.floor((ms - originMs) * 90);

async function startHls() {
  videoStarting = true;
  let originMs = null;
  // An event's stamp: the server's time now on the HLS picture's clock.
  gate.attachClock(() => (originMs === null ? null : ticks(client.now(), originMs)));
  let player = null;
  try {
    player = await playHls(HLS_URL, video, {
      onPicture: (dateMs, origin) => {
        originMs = origin;
        // As the server bounds it (`deal_viewer_delay_max_ms`, 10 s by default): a picture
        // further behind (a stalled player) does not show a deal the server would refuse.
        pictureDelayMs = Math.min(DEAL_DELAY_MAX_MS, Math.max(0, Math.round(client.now() - dateMs)));
        gate.pictured(ticks(dateMs, origin));
      },
      onFatal: () => {
        if (playback !== player) return;
        videoGone();
        retryVideo(); // e.g. no segment recorded yet
      },
    });
  } catch (error) {
    gate.detach();
    console.warn(`live video unavailable: ${error.message}`);
    retryVideo();
    return;
  } finally {
    videoStarting = false;
  }
  playback = player;
  setPath("hls", player.engine);
  if (!videoWanted) videoGone();
  render();
}

function retryVideo() {
  const delay = backoffMs(videoAttempt, 15000);
  videoAttempt += 1;
  clearTimeout(videoTimer);
  videoTimer = setTimeout(startVideo, delay);
}

function videoGone() {
  clearTimeout(videoTimer);
  clearTimeout(pictureTimer);
  if (playback) playback.close();
  playback = null;
  pictureDelayMs = 0;
  gate.detach();
  setPath("none");
  $("unmute").hidden = true;
}

function onChannel(message) {
  gate.channel(message);
  // The host stopped: the server has ended this session already (no DELETE to send).
  if (message.type === "publisher" && message.ingest === "none") videoGone();
}

$("unmute").addEventListener("click", () => {
  video.muted = false;
  $("unmute").hidden = true;
});

// ---- the brand's funnel: a card seen, a card tapped (docs/protocol.md) ------------------
// A card at least half on screen is a view, sent once per product for the page (a socket
// that reconnects does not send it again); a tap that opens the Buy sheet is a click. Only
// this page sends them: the host console and the OBS source are not viewers.

const SEEN_RATIO = 0.5;
const seenSent = new Set();
const seenPending = new Set();
const cardWatch = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.target.isConnected) cardWatch.unobserve(entry.target); // a card gone unseen
    // A crossing of the threshold may report a hair under it (subpixel layout).
    if (!entry.isIntersecting || entry.intersectionRatio < SEEN_RATIO * 0.99) continue;
    cardWatch.unobserve(entry.target);
    const product = entry.target.dataset.product;
    if (!seenSent.has(product)) seenPending.add(product);
  }
  sendSeen();
}, { threshold: SEEN_RATIO });

function watchCard(root) {
  if (!seenSent.has(root.dataset.product)) cardWatch.observe(root);
  return root;
}

// Sent once the socket is open (each render tries again what could not go yet).
function sendSeen() {
  for (const product of seenPending) {
    if (!client.send({ type: "product_seen", product_id: product })) return;
    seenPending.delete(product);
    seenSent.add(product);
  }
}

function tapCard(productId) {
  client.send({ type: "product_tap", product_id: productId });
  openSheet(productId);
}

// ---- likes: taps are batched (the hub takes up to 50 a message, 20 messages a second) --

let pendingLikes = 0;
let likeTimer = null;

function flushLikes() {
  likeTimer = null;
  if (pendingLikes === 0) return;
  const count = Math.min(50, pendingLikes);
  if (client.send({ type: "like", count })) pendingLikes -= count;
  if (pendingLikes > 0) likeTimer = setTimeout(flushLikes, 500);
}

$("like").addEventListener("click", () => {
  pendingLikes += 1;
  if (state) setText($("likes"), compact(state.likes + pendingLikes));
  const heart = document.createElement("span");
  heart.className = "heart";
  heart.style.setProperty("--drift", `${Math.round(Math.random() * 40 - 20)}px`);
  heart.addEventListener("animationend", () => heart.remove());
  $("hearts").append(heart);
  if (!likeTimer) likeTimer = setTimeout(flushLikes, 250);
});

// ---- chat and reactions (docs/chat.md) -------------------------------------------------
// Messages come in `chat` frames (the sender's own one at once, then again in the batch:
// one message by id); deletions, bans, clearing, the announcement and the settings are
// events. A refusal (`error`) or a private `notice` is shown under the messages.

const CHAT_SHOWN = 8;
const NOTE_MS = 8000;
const LINK_NOTE_MS = 30000;
let chat = chatInitial();
const chatList = new ChatList($("chat-list"), { shown: CHAT_SHOWN });
const pendingChat = new Map(); // ref -> the text sent
const ownReactions = {}; // floated at the tap, so not again when the room's count includes them
let chatRefs = 0;
let noteTimer = null;

// `link` {href, label}: where to go next (a claim's order, the wallet); such a note stays
// longer, to be followed.
function chatNote(kind, text, link = null) {
  const note = $("chat-note");
  note.dataset.kind = kind;
  note.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.className = "chat-note-link";
    a.href = link.href;
    a.textContent = link.label;
    note.append(" ", a);
  }
  note.hidden = !text;
  clearTimeout(noteTimer);
  if (text) noteTimer = setTimeout(() => { note.hidden = true; }, link ? LINK_NOTE_MS : NOTE_MS);
}

// "Type SOLD 3 to claim it": the first pinned product's code, else the lineup's first.
function renderClaimHint() {
  const card = current && [...current.cards, ...current.tray].map(withCode).find((c) => c.code !== null);
  const sizes = card && card.variants.length > 1 ? card.variants.map((v) => String(v.name)) : [];
  const size = sizes.find((name) => /^[A-Za-z0-9./-]{1,20}$/.test(name)) || "";
  const hint = card ? claimHint(chat.settings, card.code, size) : "";
  $("chat-hint").hidden = !hint;
  setText($("chat-hint"), hint);
}

function renderChat() {
  chatList.render(chat);
  const announcement = chat.announcement || "";
  $("chat-announcement").hidden = !announcement;
  setText($("chat-announcement-text"), announcement);
  const mode = settingsText(chat.settings);
  $("chat-mode").hidden = !mode;
  setText($("chat-mode"), mode);
  renderClaimHint();
}

function floatRoomReactions(before, after) {
  for (const [emoji, delta] of Object.entries(reactionDeltas(before, after))) {
    const mine = Math.min(delta, ownReactions[emoji] || 0);
    ownReactions[emoji] = (ownReactions[emoji] || 0) - mine;
    if (delta > mine) floatReactions($("reaction-floats"), emoji, delta - mine);
  }
}

function onChat(message) {
  const before = chat;
  chat = chatReduce(chat, message);
  if (message.type === "state") floatRoomReactions(before.reactions, chat.reactions);
  if (chat !== before) renderChat();
  const sent = message.ref !== undefined && pendingChat.has(message.ref);
  if (message.type === "error" && (sent || CHAT_ERRORS.has(message.code))) {
    chatNote("error", refusalText(message)); // the text stays in the box, to fix or resend
  } else if (message.type === "notice") {
    const claim = claimNote(message, state ? state.products : {}, chat.settings.keyword);
    if (claim) chatNote(claim.kind, claim.text, claim.link);
    else chatNote("info", message.message || message.code);
  }
  if (sent && message.type !== "error" && $("chat-input").value === pendingChat.get(message.ref)) {
    $("chat-input").value = "";
  }
  if (sent) pendingChat.delete(message.ref);
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-input").value;
  if (!text.trim()) return;
  chatRefs += 1;
  const ref = `chat-${chatRefs}`;
  if (!client.send({ type: "chat", text, ref })) {
    chatNote("error", "Not connected: try again in a moment.");
    return;
  }
  pendingChat.set(ref, text);
  chatNote("", "");
});

$("chat-toggle").addEventListener("click", () => {
  const toggle = $("chat-toggle");
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  setText(toggle, open ? "Hide chat" : "Show chat");
  $("chat-body").hidden = !open;
});

for (const [emoji, symbol, label] of REACTIONS) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "reaction-btn";
  button.dataset.emoji = emoji;
  button.textContent = symbol;
  button.setAttribute("aria-label", `React: ${label}`);
  button.addEventListener("click", () => {
    if (!client.send({ type: "react", emoji })) return;
    ownReactions[emoji] = (ownReactions[emoji] || 0) + 1;
    floatReactions($("reaction-floats"), emoji, 1);
  });
  $("reactions").append(button);
}

// Signed in: the message box; signed out: the way to sign in and come back here.
sessionReady.then(() => {
  $("chat-form").hidden = !signedIn();
  $("chat-signin").hidden = signedIn();
  $("chat-signin").href = signinHref();
});

// ---- the buy sheet ----------------------------------------------------------------------
// Signed out, Buy leads to the sign-in page and back here with `?buy=<product>`, which
// opens the sheet again. A wallet without an address or a card gets them added right in
// the sheet; then Pay. The price on the Pay button is the one the request carries
// (`expected_unit_price_minor`): the server refuses any other (409 price-changed).

const sheet = $("sheet");
let sheetProduct = null;
let attempt = null; // {key, body}: the same key is reused when the same request is retried
let wallet; // undefined: not asked yet; else loadWallet()'s answer
let retryTimer = null;
let pendingTries = 0;
let shown = null; // {product, price_minor}: the price the Pay button shows now
let repriced = null; // {product, seen, price_minor}: the server's price after price-changed
const pendingBuy = new URLSearchParams(location.search).get("buy");

function result(kind, title, detail = "", orderId = "") {
  const box = $("sheet-result");
  box.dataset.kind = kind;
  box.replaceChildren();
  if (title) {
    const t = document.createElement("p");
    t.className = "result-title";
    t.textContent = title;
    box.append(t);
  }
  if (detail) {
    const d = document.createElement("p");
    d.className = "result-detail";
    d.textContent = detail;
    box.append(d);
  }
  if (orderId) {
    const o = document.createElement("p");
    o.className = "result-order";
    o.append("Order ");
    const code = document.createElement("code");
    code.id = "order-id";
    code.textContent = orderId;
    o.append(code);
    box.append(o);
  }
}

function selectedVariant(card) {
  const checked = $("variant-list").querySelector("input:checked");
  if (checked) return checked.value;
  return card.variants.length ? card.variants[0].id : "default";
}

function renderVariants(card) {
  const box = $("variants");
  const list = $("variant-list");
  box.hidden = card.variants.length < 2;
  if (box.hidden) return;
  const levels = (state && state.stock[card.id]) || {};
  const chosen = list.querySelector("input:checked");
  syncList(list, card.variants, (v) => v.id, (v) => {
    const label = document.createElement("label");
    label.className = "variant";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "variant";
    input.value = v.id;
    const text = document.createElement("span");
    label.append(input, text);
    return label;
  }, () => {});
  let firstOpen = null;
  for (const label of list.children) {
    const v = card.variants.find((x) => x.id === label.dataset.key);
    const left = levels[v.id] ?? 0;
    const input = label.querySelector("input");
    input.disabled = left <= 0;
    if (!input.disabled && !firstOpen) firstOpen = input;
    const note = left <= 0 ? " · sold out" : left <= 3 ? ` · only ${left} left` : "";
    setText(label.querySelector("span"), v.name + note);
  }
  if ((!chosen || chosen.disabled) && firstOpen) firstOpen.checked = true;
}

// The unit price that applies now: the room's, unless the server told us another since.
function priceNow(card) {
  if (repriced && repriced.product === card.id && repriced.seen === card.price_minor) {
    return repriced.price_minor;
  }
  return card.price_minor;
}

function dealNote(card, price) {
  const deal = card.deal;
  if (!deal) return "";
  if (deal.phase === "upcoming") {
    // The deal price is not the price yet: say which one a tap now pays, and when that changes.
    return `${money(price, card.currency)} now · the deal price ${money(deal.price_minor, card.currency)}`
      + ` applies when the deal opens, in ${clock(deal.seconds_left)}`;
  }
  return dealText(deal, card.currency);
}

function renderSheet() {
  const card = cardOf(sheetProduct);
  if (!card) return;
  const price = priceNow(card);
  setText($("sheet-title"), card.title);
  const was = card.original_price_minor != null ? ` (was ${money(card.original_price_minor, card.currency)})` : "";
  setText($("sheet-price"), money(price, card.currency) + was);
  const note = dealNote(card, price);
  $("sheet-deal").hidden = !note;
  setText($("sheet-deal"), note);
  const pay = $("pay");
  if (!pay.hidden) {
    renderVariants(card);
    if (pay.getAttribute("aria-busy") !== "true") {
      shown = { product: card.id, price_minor: price };
      pay.disabled = !card.can_buy;
      setText(pay, card.can_buy ? `Pay ${money(price, card.currency)}`
        : card.stock_left <= 0 ? "Sold out" : "Not available now");
    }
  }
}

function resetSheet() {
  clearTimeout(retryTimer);
  attempt = null;
  $("pay").hidden = true;
  $("pay").removeAttribute("aria-busy");
  $("wallet").hidden = true;
  $("setup").hidden = true;
  $("address-slot").replaceChildren();
  $("card-slot").replaceChildren();
  $("signin-link").hidden = true;
  $("variants").hidden = true;
  $("variant-list").replaceChildren();
  $("sheet-actions").hidden = true;
  result("", "");
}

async function openSheet(productId) {
  sheetProduct = productId;
  repriced = null;
  resetSheet();
  renderSheet();
  if (!sheet.open) sheet.showModal();
  await sessionReady;
  if (sheetProduct !== productId || !sheet.open) return;
  showAccount();
  if (!signedIn()) {
    result("error", "Sign in to buy", "Sign in with your email: it takes a minute, and you come right back here.");
    const link = $("signin-link");
    // Back to this stream with the sheet open again for this product.
    link.href = `/signin?next=${encodeURIComponent(`${location.pathname}?buy=${encodeURIComponent(productId)}`)}`;
    link.hidden = false;
    link.focus();
    return;
  }
  if (wallet === undefined && !(await refreshWallet(productId))) return;
  showWallet();
}

// Reads the wallet again; false (having said why) when it could not.
async function refreshWallet(productId = sheetProduct) {
  result("", "", "Loading your wallet…");
  const loaded = await loadWallet(auth);
  if (sheetProduct !== productId || !sheet.open) return false;
  if (loaded.error) {
    result("error", "Couldn't load your wallet", problemText(loaded.error));
    return false;
  }
  wallet = loaded;
  result("", "");
  return true;
}

function fillSelect(select, items, chosen, line) {
  const keep = items.some((item) => item.id === select.value) ? select.value : chosen;
  select.replaceChildren(...items.map((item) => {
    const option = document.createElement("option");
    option.value = item.id;
    option.textContent = line(item);
    return option;
  }));
  select.value = keep;
}

// Pay with the wallet, or first add what it lacks, right here in the sheet.
function showWallet(cardId = null) {
  $("setup").hidden = true;
  $("address-slot").replaceChildren();
  $("card-slot").replaceChildren();
  if (!wallet.addresses.length || !wallet.cards.length) {
    showSetup(!wallet.addresses.length, !wallet.cards.length);
    return;
  }
  fillSelect($("ship-to"), wallet.addresses, wallet.defaultAddress, addressLine);
  fillSelect($("pay-with"), wallet.cards, wallet.defaultCard, cardLine);
  if (cardId) $("pay-with").value = cardId;
  $("wallet").hidden = false;
  $("add-card").hidden = false;
  $("pay").hidden = false;
  renderSheet();
  $("pay").focus();
}

async function showSetup(needAddress, needCard) {
  $("pay").hidden = true;
  $("wallet").hidden = true;
  $("setup").hidden = false;
  setText($("setup-title"), needAddress && needCard ? "Where to, and how to pay"
    : needAddress ? "Where should we ship it?" : "Add a card");
  const address = needAddress ? mountAddressForm($("address-slot"), {
    auth, submitLabel: needCard ? null : "Save address", makeDefault: true,
    onSaved: () => afterSetup(),
  }) : null;
  let cardForm = null;
  if (needCard) {
    cardForm = mountCardForm($("card-slot"), {
      auth,
      submitLabel: needAddress ? "Save and continue" : "Save card",
      beforeSubmit: address ? async () => Boolean(await address.save()) : null,
      onToken: async (card) => {
        const r = await saveCard(auth, card.token);
        if (!r.ok) {
          result("error", "Couldn't save the card", problemText(r));
          return;
        }
        await afterSetup(r.data.id);
      },
    });
  }
  if (!needAddress && cardForm) await cardForm.ready;  // the card's fields come after
  const first = $("setup").querySelector("input");
  if (first) first.focus();
}

async function afterSetup(cardId = null) {
  const productId = sheetProduct;
  if (await refreshWallet(productId)) showWallet(cardId);
}

$("add-card").addEventListener("click", () => {
  $("add-card").hidden = true;
  showSetup(false, true);
});

const OUTCOME = {
  "sold-out": ["Sold out", "Sorry, it just sold out. You were not charged."],
  "insufficient-stock": ["Sold out", "Sorry, there isn't enough left. You were not charged."],
  "limit-reached": ["Limit reached", "You've already bought as many of these as one buyer can."],
  "deal-quantity-exceeded": ["The deal just ran out", "The regular price applies now. Check it and tap Pay again."],
  "stream-not-live": ["Not live", "This stream isn't live right now, so its products can't be bought here."],
  "not-offered": ["Not offered", "This item isn't offered in this stream any more."],
  "product-unavailable": ["Not available", "This item can't be bought right now."],
  "reservation-expired": ["Payment timed out",
    "The hold ran out before the payment went through. You were not charged."],
  "wallet-missing": ["Add an address and a card", "Your wallet is missing one of them."],
  "not-found": ["Not in your wallet", "That address or card was removed. Pick another one."],
  "unauthorized": ["Sign in again", "Your sign-in has expired. Sign in again to buy."],
  "passkey-cancelled": ["Not confirmed", "This purchase needs your passkey. Tap Pay to try again: nothing was charged."],
};

function confirmed(order, card, note) {
  $("pay").hidden = true;
  $("variants").hidden = true;
  $("wallet").hidden = true;
  $("sheet-actions").hidden = false;
  $("receipt-link").href = `/me/orders/${encodeURIComponent(order.id)}`;
  const paid = money(order.amount_minor ?? card.price_minor, order.currency || card.currency);
  const to = order.ship_to ? ` · ships to ${order.ship_to.name}` : "";
  result("ok", "Order confirmed", `${paid}${to}${note ? `. ${note}` : ""}`, order.id);
  $("sheet-done").focus();
}

// The one place this page sends a buy: `request` is {body, key} (the Idempotency-Key). A
// signed-in buyer whose account has a passkey confirms each new purchase with one tap
// (passkey.js); a retry of the same request needs none.
async function sendBuy(request) {
  request.path = "/api/v1/buy";
  return payConfirmed(request, {
    auth: auth(), tap: Boolean(session && session.buy_confirm === "passkey"),
    onTap: () => setText($("pay"), "Confirm with your passkey…"),
    onConfirmed: () => setText($("pay"), "Paying…") });
}

function captureLater(request, tries) {
  setTimeout(async () => {
    const r = await sendBuy(request);
    if (r.status === 202 && tries > 1) captureLater(request, tries - 1);
  }, 2000);
}

async function pay() {
  const card = cardOf(sheetProduct);
  if (!card || !signedIn() || !shown || shown.product !== card.id) return;
  if (attempt && attempt.unsettled) {
    // The last try's outcome is unknown: ask again exactly as it was sent (same key and
    // body, so never a second charge), whatever the sheet shows meanwhile.
    await submit(attempt.unsettled, card);
    return;
  }
  const body = {
    product_id: card.id, variant: selectedVariant(card), quantity: 1, stream_id: streamId,
    expected_unit_price_minor: shown.price_minor,
    address_id: $("ship-to").value, card_id: $("pay-with").value,
  };
  const encoded = JSON.stringify(body);
  if (!attempt || attempt.body !== encoded) {
    attempt = { key: newKey(), body: encoded };
    pendingTries = 0;
  }
  // Not part of what makes it the same buy: the player's delay moves from tap to tap.
  if (pictureDelayMs > 0) body.viewer_delay_ms = pictureDelayMs;
  await submit({ body, key: attempt.key }, card);
}

// Sends a buy and shows how it went; a payment still pending is asked again as it was sent.
async function submit(request, card) {
  clearTimeout(retryTimer);
  const button = $("pay");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  setText(button, "Paying…");
  result("", "", "Paying…");
  const r = await sendBuy(request);
  button.removeAttribute("aria-busy");
  if (r.status === 201) {
    attempt = null;
    confirmed(r.data.order, card, "");
    return;
  }
  if (r.status === 202 && r.data && r.data.payment === "capture_pending") {
    // Authorized, the capture's outcome unknown: the sale stands; the same key retries it.
    captureLater(request, 3);
    attempt = null;
    confirmed(r.data.order, card, "Payment authorized; the charge completes in a moment.");
    return;
  }
  if (r.status === 202 && pendingTries < 4) {
    // Payment outcome unknown: ask again with the same key; it can never buy twice.
    pendingTries += 1;
    result("", "Confirming your payment…", "This can take a few seconds.");
    retryTimer = setTimeout(() => submit(request, card), 1500);
    return;
  }
  if (r.kind === "price-changed" && r.data && Number.isInteger(r.data.unit_price_minor)) {
    // Nothing was charged: show the price that applies now, for the buyer to confirm.
    attempt = null;
    repriced = { product: card.id, seen: card.price_minor, price_minor: r.data.unit_price_minor };
    renderSheet();
    result("error", "The price just changed",
      `It's ${money(r.data.unit_price_minor, card.currency)} now. You were not charged: check it and tap Pay again.`);
    $("pay").focus();
    return;
  }
  renderSheet();
  if (r.status === 202) {
    if (attempt) attempt.unsettled = request;
    result("error", "Still confirming",
      "Your payment hasn't settled yet. Tap Pay to check again: you won't be charged twice.");
  } else if (r.status === 402) {
    attempt = null;
    const why = (r.data && r.data.detail) || "Your card was declined.";
    const others = wallet.cards.length > 1;
    result("error", "Payment declined", `${why} ${others ? "Pick another card, or add one, and tap Pay again."
      : "Add another card and tap Pay again."}`);
    if (others) $("pay-with").focus();
    else {
      $("add-card").hidden = true;
      showSetup(false, true);
    }
  } else if (r.kind === "network" || r.status >= 500) {
    // The same request stays: a retry replays the first answer, never a second charge.
    if (attempt) attempt.unsettled = request;
    result("error", "Something went wrong", `${problemText(r)} Tap Pay to try again: you won't be charged twice.`);
  } else {
    attempt = null;
    const [title, detail] = OUTCOME[r.kind] || ["Couldn't buy", problemText(r)];
    result("error", title, detail);
    if (r.kind === "not-found" || r.kind === "wallet-missing") {
      wallet = undefined;
      if (await refreshWallet()) showWallet();
    }
    if (r.kind === "unauthorized" && !token) {
      session = null;
      $("signin-link").href = signinHref();
      $("signin-link").hidden = false;
    }
  }
}

// Who is buying, with a way out, when the page is signed in with a session.
function showAccount() {
  $("account").hidden = !session;
  if (session) setText($("account-email"), session.account.email);
}

$("signout").addEventListener("click", async () => {
  const r = await api("POST", "/auth/signout", { csrf: session ? session.csrf : null });
  if (!r.ok) {
    result("error", "Couldn't sign out", problemText(r));
    return;
  }
  location.reload(); // the hub socket and the page start over, signed out
});

$("pay").addEventListener("click", pay);
$("sheet-close").addEventListener("click", () => sheet.close());
$("sheet-done").addEventListener("click", () => sheet.close());
sheet.addEventListener("click", (event) => {
  if (event.target === sheet) sheet.close(); // a tap on the backdrop
});
sheet.addEventListener("close", () => {
  clearTimeout(retryTimer);
  sheetProduct = null;
});

window.addEventListener("pagehide", () => {
  flushLikes();
  if (playback) playback.stop();
  client.close();
});

tick();
