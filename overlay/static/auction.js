// A show's live auction (docs/auctions.md) for every page that shows it: the viewer page
// (with bidding), the host console and the OBS source. The card draws overlay.js
// `auctionView()`, whose clock is server time. The page learns its own paddle from its bid's
// answer, so "You were outbid" is the page seeing another paddle lead.

import { api, newKey, problemText } from "./api.js";
import { clock, money, setText } from "./cards.js";

const STATUS = {
  scheduled: "Auction soon: pre-bids open",
  live: "Live auction",
  closing: "Closing…",
  cancelled: "Auction cancelled",
};
const YOU = {
  winning: "You're winning",
  outbid: "You were outbid",
  won: "You won!",
  lost: "Someone else won this one",
};

function paddleText(n) {
  return `Paddle #${n}`;
}

// The card's headline: what is happening, and for a result, how it ended.
export function statusText(a) {
  if (a.status === "sold") return `Sold for ${money(a.price_minor, a.currency)} to ${paddleText(a.high_paddle)}`;
  if (a.status === "no sale") return a.result === "reserve-not-met" ? "No sale: the reserve wasn't met" : "No sale: no bids";
  return STATUS[a.status] || a.status;
}

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/**
 * The auction card's element. `bidding`: with the viewer's bid button, max-bid form, the
 * sign-in link and the note where bids' answers go (see `mountBidding`).
 */
export function createAuctionCard({ bidding = false, idPrefix = "auction" } = {}) {
  const root = el("section", "auction-card", { "aria-labelledby": `${idPrefix}-title`, "data-status": "" });
  root.hidden = true;
  const head = el("div", "auction-head");
  const status = el("p", "auction-status");
  const timer = el("p", "auction-clock", { role: "timer", "aria-label": "Time left", "aria-live": "off" });
  head.append(status, timer);
  const title = el("h2", "auction-title", { id: `${idPrefix}-title` });
  const price = el("p", "auction-price");
  const priceLabel = el("span", "visually-hidden");
  priceLabel.textContent = "Current price: ";
  const amount = el("span", "auction-amount");
  price.append(priceLabel, amount);
  const lead = el("p", "auction-lead");
  const you = el("p", "auction-you", { role: "status", "aria-live": "polite" });
  root.append(head, title, price, lead, you);
  if (bidding) {
    const actions = el("div", "auction-actions");
    const bid = el("button", "btn auction-bid", { type: "button" });
    const form = el("form", "auction-max");
    const label = el("label", "auction-max-label", { for: `${idPrefix}-max` });
    const input = el("input", "auction-max-input", {
      id: `${idPrefix}-max`, type: "number", inputmode: "decimal", min: "0", step: "any",
      autocomplete: "off", "aria-describedby": `${idPrefix}-max-hint`,
    });
    const hint = el("span", "auction-max-hint", { id: `${idPrefix}-max-hint` });
    const submit = el("button", "btn btn-secondary auction-max-btn", { type: "submit" });
    submit.textContent = "Set max bid";
    form.append(label, input, submit, hint);
    const signin = el("a", "btn auction-signin", { href: "/signin" });
    signin.textContent = "Sign in to bid";
    signin.hidden = true;
    actions.append(bid, form, signin);
    const note = el("p", "auction-note", { role: "status", "aria-live": "polite" });
    root.append(actions, note);
  }
  return root;
}

/**
 * Draw `a` (an `auctionView()`, or null to hide the card) into a card made above; signed
 * out, a bidding card asks to sign in instead of showing its bid controls.
 */
export function updateAuctionCard(root, a, { signedIn = true, signinHref = "/signin" } = {}) {
  root.hidden = !a;
  if (!a) return;
  root.dataset.status = a.status;
  root.dataset.auction = a.id;
  root.dataset.endsMs = a.ends_ms === null ? "" : String(a.ends_ms);
  setText(root.querySelector(".auction-status"), statusText(a));
  const timer = root.querySelector(".auction-clock");
  timer.hidden = a.seconds_left === null;
  setText(timer, a.seconds_left === null ? "" : clock(a.seconds_left));
  setText(root.querySelector(".auction-title"), a.title);
  setText(root.querySelector(".auction-amount"), money(a.price_minor, a.currency));
  const bids = `${a.bids} ${a.bids === 1 ? "bid" : "bids"}`;
  setText(root.querySelector(".auction-lead"), a.high_paddle === null
    ? (a.bids ? bids : "No bids yet") : `${paddleText(a.high_paddle)} leads · ${bids}`);
  const you = root.querySelector(".auction-you");
  you.dataset.you = a.you || "";
  you.hidden = !a.you;
  setText(you, a.you ? YOU[a.you] : "");
  const bid = root.querySelector(".auction-bid");
  if (bid) {
    setText(bid, `Bid ${money(a.next_minor, a.currency)}`);
    bid.dataset.amount = String(a.next_minor);
    if (bid.getAttribute("aria-busy") !== "true") bid.disabled = !a.can_bid;
    root.querySelector(".auction-max").hidden = !a.can_bid || !signedIn;
    bid.hidden = !a.can_bid || !signedIn;
    const signin = root.querySelector(".auction-signin");
    signin.hidden = !a.can_bid || signedIn;
    signin.href = signinHref;
    setText(root.querySelector(".auction-max-label"), `Your max bid (${a.currency})`);
    setText(root.querySelector(".auction-max-hint"),
      `${money(a.next_minor, a.currency)} or more: we bid for you, one step at a time, up to it.`);
  }
}

export function digitsOf(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

// A refused bid in words (the problem+json's `kind`, with `next_minor` for too-low).
export function bidErrorText(r, currency) {
  const data = r.data || {};
  switch (r.kind) {
    case "too-low":
      return Number.isInteger(data.next_minor)
        ? `Too low: bid ${money(data.next_minor, currency)} or more.` : "Too low: bid more.";
    case "closed": return "Bidding has closed.";
    case "banned": return "You can't bid in this show.";
    case "seller": return "You can't bid on your own product.";
    case "not-higher": return "You're already winning with a higher max bid.";
    case "wallet-missing": return "Add a card and an address to your wallet to bid: the winner pays at once.";
    case "unauthorized": return "Sign in to bid.";
    case "network": return "No connection. Check your network and try again.";
    default: return problemText(r);
  }
}

/**
 * Bidding from the viewer's card: one tap bids the next valid amount, the form sets a max
 * (proxy bid). `auth()` the page's credentials (token or session + CSRF), `current()` the
 * card's latest `auctionView()`, `onPaddle(auction, paddle, bids)` the page's paddle from a
 * bid's answer, with the auction's bid count once it is in (the card the page has may not
 * show it yet: bids reach the card with the hub's next tick). A retried bid (the same amount after no answer) keeps its Idempotency-Key.
 */
export function mountBidding(root, { base, auth, current, onPaddle }) {
  const note = root.querySelector(".auction-note");
  const input = root.querySelector(".auction-max-input");
  let pending = null; // {auction, max, key}: the last bid that got no answer
  const say = (kind, text) => {
    note.dataset.kind = kind;
    setText(note, text);
  };

  async function place(maxMinor, button) {
    const a = current();
    if (!a) return;
    const same = pending && pending.auction === a.id && pending.max === maxMinor;
    const key = same ? pending.key : newKey();
    pending = { auction: a.id, max: maxMinor, key };
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    say("", "Bidding…");
    const r = await api("POST", `${base}/auctions/${encodeURIComponent(a.id)}/bids`, {
      ...auth(), body: { max_minor: maxMinor }, headers: { "Idempotency-Key": key },
    });
    button.removeAttribute("aria-busy");
    button.disabled = false;
    if (r.kind !== "network" && r.status < 500) pending = null;
    if (r.ok) {
      onPaddle(a.id, r.data.paddle, r.data.bids);
      say(r.data.high ? "ok" : "error", r.data.high
        ? `Your max bid is ${money(maxMinor, a.currency)}: we bid for you up to it.`
        : `Another bidder's max is higher: the price is now ${money(r.data.price_minor, a.currency)}.`);
      return;
    }
    say("error", bidErrorText(r, a.currency));
    if (r.kind === "too-low" && r.data && Number.isInteger(r.data.next_minor)) {
      input.value = String(r.data.next_minor / 10 ** digitsOf(a.currency));
    }
  }

  const bid = root.querySelector(".auction-bid");
  bid.addEventListener("click", () => place(Number(bid.dataset.amount), bid));
  root.querySelector(".auction-max").addEventListener("submit", (event) => {
    event.preventDefault();
    const a = current();
    if (!a) return;
    const maxMinor = Math.round(Number(input.value) * 10 ** digitsOf(a.currency));
    if (!(maxMinor >= a.next_minor)) {
      say("error", `Your max bid must be at least ${money(a.next_minor, a.currency)}.`);
      input.focus();
      return;
    }
    place(maxMinor, root.querySelector(".auction-max-btn"));
  });
}
