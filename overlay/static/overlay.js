// The overlay reducer, the browser's twin of overlay/state.py. Same plain-JSON state, same
// view; overlay/fixtures/conformance.json runs against both so they cannot drift.

export const TICKER_KEPT = 10;
export const DEFAULT_THRESHOLDS = { show_left_at: 10, only_left_at: 3 };

// The show's auction as the state keeps it: the fields of its events (docs/protocol.md).
export const AUCTION_FIELDS = ["auction", "product", "start_minor", "state", "result",
  "price_minor", "next_minor", "high_paddle", "bids", "ends_ms", "reserve_met"];

export class Resync extends Error {}

function auctionOf(source) {
  const auction = {};
  for (const k of AUCTION_FIELDS) auction[k] = source[k] ?? null;
  return auction;
}

const clone = (value) => (value === undefined ? null : JSON.parse(JSON.stringify(value)));

export function initial(snapshot) {
  const keys = ["seq", "stream", "tray", "pinned", "deals", "products", "stock", "deal_sold",
    "viewers", "likes", "sales", "just_bought"];
  const state = {};
  for (const key of keys) state[key] = clone(snapshot[key]);
  state.deal_sold = state.deal_sold || {};
  state.stream = { ingest: "none", ...state.stream }; // snapshots before video had none
  state.just_bought = (state.just_bought || []).slice(0, TICKER_KEPT);
  state.auction = snapshot.auction ? auctionOf(snapshot.auction) : null; // older snapshots had none
  state.auction_tick = null; // the latest tick's bid, whichever auction it names
  return state;
}

export function reduce(state, message) {
  const kind = message.type;
  if (kind === "snapshot") return initial(message);
  if (state === null || state === undefined) throw new Resync("no snapshot yet");
  if ("seq" in message) {
    if (message.seq <= state.seq) return state;
    if (message.seq !== state.seq + 1) {
      throw new Resync(`expected seq ${state.seq + 1}, got ${message.seq}`);
    }
    return applyEvent(state, message);
  }
  if (kind === "state") {
    const next = { ...state };
    for (const key of ["stock", "deal_sold"]) {
      if (key in message) next[key] = { ...state[key], ...message[key] };
    }
    for (const key of ["viewers", "likes", "sales"]) {
      if (key in message) next[key] = message[key];
    }
    if (message.just_bought && message.just_bought.length) {
      next.just_bought = [...message.just_bought, ...state.just_bought].slice(0, TICKER_KEPT);
    }
    if (message.auction) {
      next.auction_tick = message.auction;
      next.auction = applyBid(state.auction, message.auction);
    }
    return next;
  }
  return state;
}

// What a bid changes, in the tick's `state` (bids are not sequenced events).
const AUCTION_BID_FIELDS = ["price_minor", "next_minor", "high_paddle", "bids", "ends_ms",
  "reserve_met"];

// The auction after the tick's latest bid: only onto the same auction, and only a later bid
// (`bids` counts them): a tick and the sequenced events race both ways (a tick read before
// the close arrives after it; a page holding events for its picture applies a tick before
// the event that opened the auction).
function applyBid(auction, bid) {
  if (!auction || !bid || auction.auction !== bid.auction || bid.bids <= auction.bids) return auction;
  const next = { ...auction };
  for (const k of AUCTION_BID_FIELDS) next[k] = bid[k];
  return next;
}

function applyEvent(state, message) {
  const next = { ...state, seq: message.seq };
  switch (message.type) {
    case "pin":
    case "unpin":
      next.pinned = [...message.pinned];
      break;
    case "deal.scheduled": {
      const deal = {};
      for (const k of ["price_minor", "cap", "per_buyer_limit", "opens_ms", "closes_ms"]) {
        deal[k] = message[k];
      }
      next.deals = { ...state.deals, [message.product_id]: deal };
      next.deal_sold = { ...state.deal_sold, [message.product_id]: 0 };
      break;
    }
    case "deal.closed": {
      const deals = { ...state.deals };
      delete deals[message.product_id];
      next.deals = deals;
      break;
    }
    case "lineup.changed":
      if (message.lineup.some((p) => !(p in state.products))) {
        throw new Resync("the lineup names a product this client has no card for");
      }
      next.tray = [...message.lineup];
      next.pinned = [...message.pinned];
      if ("codes" in message) next.stream = { ...state.stream, codes: { ...message.codes } };
      break;
    case "stream.state":
      next.stream = { ...state.stream, state: message.state };
      if (message.state === "ended" || message.state === "cancelled") next.pinned = [];
      break;
    case "stream.ingest":
      next.stream = { ...state.stream, ingest: message.ingest };
      break;
    case "auction.created":
      next.auction = applyBid({ ...auctionOf({}), auction: message.auction, product: message.product,
        start_minor: message.start_minor, state: "scheduled", price_minor: 0,
        next_minor: message.start_minor, bids: 0 }, state.auction_tick);
      break;
    case "auction.opened":
    case "auction.bid": // logs from before bids moved to the tick's state
    case "auction.closed":
      if (state.auction && state.auction.auction === message.auction) {
        const moved = { ...state.auction, state: message.state ?? null, result: message.result ?? null };
        if ((message.bids ?? 0) >= state.auction.bids) { // not older than a tick's
          for (const k of AUCTION_BID_FIELDS) moved[k] = message[k] ?? null;
        }
        next.auction = applyBid(moved, state.auction_tick);
      }
      break;
    default:
      break;
  }
  return next;
}

function dealView(state, product, nowMs) {
  const deal = state.deals[product];
  if (!deal) return null;
  if (nowMs < deal.opens_ms) {
    return { phase: "upcoming", price_minor: deal.price_minor,
      seconds_left: Math.ceil((deal.opens_ms - nowMs) / 1000) };
  }
  const left = deal.cap - (state.deal_sold[product] || 0);
  if (nowMs < deal.closes_ms && left > 0) {
    return { phase: "open", price_minor: deal.price_minor, units_left: left,
      seconds_left: Math.ceil((deal.closes_ms - nowMs) / 1000) };
  }
  return null;
}

function badge(left, t) {
  if (left <= 0) return "sold out";
  if (left <= t.only_left_at) return `only ${left} left`;
  if (left <= t.show_left_at) return `${left} left`;
  return "";
}

function card(state, product, nowMs, t) {
  const p = state.products[product];
  const levels = state.stock[product] || {};
  const left = Object.values(levels).reduce((a, b) => a + b, 0);
  const deal = dealView(state, product, nowMs);
  const open = deal !== null && deal.phase === "open";
  return {
    id: product, title: p.title, image_url: p.image_url, currency: p.currency,
    price_minor: open ? deal.price_minor : p.price_minor,
    original_price_minor: open ? p.price_minor : null,
    stock_left: left, badge: badge(left, t), deal, variants: p.variants,
    can_buy: state.stream.state === "live" && left > 0 && p.status === "active",
  };
}

// `ingest`: the stream has video to play ("live"), lost its publisher for now
// ("reconnecting"), or has none.
export function view(state, nowMs, thresholds = DEFAULT_THRESHOLDS) {
  const known = (p) => p in state.products;
  const { ingest } = state.stream;
  return {
    live: state.stream.state === "live",
    ingest,
    cards: state.pinned.filter(known).map((p) => card(state, p, nowMs, thresholds)),
    tray: state.tray.filter(known).map((p) => card(state, p, nowMs, thresholds)),
    ticker: state.just_bought,
    viewers: state.viewers,
    likes: state.likes,
  };
}

function auctionStatus(auction, nowMs) {
  switch (auction.state) {
    case "scheduled": return "scheduled";
    case "open": return nowMs < auction.ends_ms ? "live" : "closing"; // the closer's turn
    case "cancelled": return "cancelled";
    default: return auction.result === "sold" ? "sold" : "no sale";
  }
}

function you(status, mine) {
  if (["scheduled", "live", "closing"].includes(status)) return mine ? "winning" : "outbid";
  if (status === "sold") return mine ? "won" : "lost";
  return null;
}

// The show's auction card at `nowMs` (server time), or null. `paddle`: the page's own paddle
// in it (from its bid's answer): "you're winning" / "you were outbid" is the page seeing its
// paddle lead or another one.
export function auctionView(state, nowMs, paddle = null) {
  const auction = state.auction;
  if (!auction) return null;
  const product = state.products[auction.product] || {};
  const status = auctionStatus(auction, nowMs);
  const ends = auction.ends_ms;
  return {
    id: auction.auction, product: auction.product,
    title: product.title ?? auction.product, image_url: product.image_url ?? "",
    currency: product.currency ?? "USD", status, result: auction.result,
    price_minor: auction.bids ? auction.price_minor : auction.start_minor,
    next_minor: auction.next_minor, high_paddle: auction.high_paddle, bids: auction.bids,
    ends_ms: ends, reserve_met: auction.reserve_met,
    seconds_left: ends !== null && (status === "live" || status === "closing")
      ? Math.max(0, Math.ceil((ends - nowMs) / 1000)) : null,
    can_bid: status === "scheduled" || status === "live",
    you: paddle === null || paddle === undefined ? null : you(status, auction.high_paddle === paddle),
  };
}

// Money for people: Intl knows each currency's minor units (JPY has none, USD two).
export function formatMoney(minor, currency, locale = undefined) {
  const digits = new Intl.NumberFormat("en", { style: "currency", currency })
    .resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(locale, { style: "currency", currency })
    .format(minor / 10 ** digits);
}
