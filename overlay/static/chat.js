// A show's chat (docs/chat.md) for every page that shows it: the viewer page, the OBS source
// and the host console's moderation pane. `chatReduce` is pure (hub message in, chat state
// out); `ChatList` keeps a list element in step with it. Chat text is hostile: every string
// from the wire goes into the page with textContent, never as HTML.

export const REACTIONS = [
  ["heart", "❤️", "Heart"], ["fire", "🔥", "Fire"], ["laugh", "😂", "Laugh"],
  ["wow", "😮", "Wow"], ["clap", "👏", "Clap"], ["bag", "🛍️", "Want it"],
];
export const EMOJI = Object.fromEntries(REACTIONS.map(([key, emoji]) => [key, emoji]));

const BADGES = { host: "Host", moderator: "Mod", brand: "Brand", buyer: "Buyer" };
const GONE_KEPT = 500; // deleted ids remembered, so a late frame cannot bring one back

// Why the server refused a message, for people (the server's own words when it has them).
const REFUSED = {
  "sign-in-to-chat": "Sign in to chat.",
  "chat-closed": "Chat opens when the show is live.",
  "too-fast": "Slow down: one message a second.",
  "slow-mode": "Slow mode is on: wait a little before your next message.",
  duplicate: "You just sent that.",
  "links-not-allowed": "Links aren't allowed in chat.",
  "followers-only": "Only followers can chat right now. Follow to join in.",
  banned: "You can't chat in this show.",
  "timed-out": "You're timed out for now.",
  empty: "Type a message first.",
  "too-long": "That's too long: 200 characters at most.",
};
export const CHAT_ERRORS = new Set(Object.keys(REFUSED));

export function refusalText(frame) {
  const own = REFUSED[frame.code];
  if (!own) return frame.message || frame.code;
  const until = /until (\d{12,})/.exec(frame.message || ""); // a time-out's end, in ms
  if (frame.code === "timed-out" && until) {
    return `You're timed out until ${new Date(Number(until[1])).toLocaleTimeString()}.`;
  }
  // The server's words add how long to wait ("wait 8 s"), when waiting helps.
  return /^wait \d+ s$/.test(frame.message || "") ? `${own} (${frame.message})` : own;
}

export function chatInitial() {
  return { seq: -1, messages: [], announcement: null, settings: {}, reactions: {}, gone: [] };
}

// "<ms>-<n>": the chat log's order.
function idKey(id) {
  const [ms, n] = String(id).split("-");
  return [Number(ms) || 0, Number(n) || 0];
}

export function compareIds(a, b) {
  const [am, an] = idKey(a);
  const [bm, bn] = idKey(b);
  return am - bm || an - bn;
}

function merge(chat, incoming, keep) {
  const byId = new Map(chat.messages.map((m) => [m.id, m]));
  for (const m of incoming) {
    if (!m || typeof m.id !== "string" || chat.gone.includes(m.id)) continue;
    byId.set(m.id, m); // the echo, then the same message in the batch: one message
  }
  const messages = [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
  return messages.slice(Math.max(0, messages.length - keep));
}

function forget(chat, ids) {
  return [...chat.gone, ...ids].slice(-GONE_KEPT);
}

/**
 * The chat after one hub message. `keep`: how many messages are kept (the newest).
 * Sequenced events are applied once (a resumed socket may send one again).
 */
export function chatReduce(chat, message, keep = 50) {
  const kind = message.type;
  if (kind === "snapshot") {
    const c = message.chat || {};
    const fresh = { ...chatInitial(), seq: message.seq, announcement: c.announcement ?? null,
      settings: c.settings || {}, reactions: message.reactions || {} };
    return { ...fresh, messages: merge(fresh, c.messages || [], keep) };
  }
  if (kind === "chat") return { ...chat, messages: merge(chat, message.messages || [], keep) };
  if (kind === "state") {
    return message.reactions ? { ...chat, reactions: { ...chat.reactions, ...message.reactions } } : chat;
  }
  if (!("seq" in message) || message.seq <= chat.seq) return chat;
  const next = { ...chat, seq: message.seq };
  switch (kind) {
    case "chat.deleted":
      next.messages = chat.messages.filter((m) => m.id !== message.id);
      next.gone = forget(chat, [message.id]);
      break;
    case "chat.banned": {
      const dropped = chat.messages.filter((m) => m.user === message.user);
      next.messages = chat.messages.filter((m) => m.user !== message.user);
      next.gone = forget(chat, dropped.map((m) => m.id));
      break;
    }
    case "chat.cleared":
      next.messages = [];
      next.gone = forget(chat, chat.messages.map((m) => m.id));
      break;
    case "chat.announcement":
      next.announcement = message.text ?? null;
      break;
    case "chat.settings": {
      const settings = { ...chat.settings };
      for (const k of ["slow_s", "followers_only", "keyword", "claim_mode"]) {
        if (k in message) settings[k] = message[k];
      }
      next.settings = settings;
      break;
    }
    default:
      break;
  }
  return next;
}

/** Per emoji, how many more reactions `after` has than `before` (what to float). */
export function reactionDeltas(before, after) {
  const out = {};
  for (const [emoji, count] of Object.entries(after || {})) {
    const delta = count - ((before || {})[emoji] || 0);
    if (delta > 0 && emoji in EMOJI) out[emoji] = delta;
  }
  return out;
}

/** "Slow mode: 10 s · Followers-only", or "" when neither is on. */
export function settingsText(settings) {
  const parts = [];
  if (settings.slow_s > 0) parts.push(`Slow mode: ${settings.slow_s} s`);
  if (settings.followers_only) parts.push("Followers-only");
  return parts.join(" · ");
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** One message: badges, name, text; a held one (moderators only) marked as such. */
export function messageNode(m) {
  const root = el("li", "chat-msg");
  root.dataset.id = m.id;
  root.dataset.user = m.user;
  root.classList.toggle("is-held", Boolean(m.held));
  for (const badge of Array.isArray(m.badges) ? m.badges : []) {
    if (!(badge in BADGES)) continue;
    const b = el("span", `chat-badge chat-badge--${badge}`, BADGES[badge]);
    root.append(b, " ");
  }
  root.append(el("span", "chat-name", String(m.name || m.user || "")), " ");
  root.append(el("span", "chat-text", String(m.text ?? "")));
  if (m.held) root.append(" ", el("span", "chat-held", "held"));
  return root;
}

/**
 * A list element showing the newest `shown` messages of a chat state, kept in place: a
 * message's node is made once, dropped when the message goes. `wrap(node, message)` may
 * dress a node (the moderation pane makes each one pickable). Scrolls to the newest
 * unless the reader scrolled up.
 */
export class ChatList {
  constructor(list, { shown = 8, wrap = null } = {}) {
    this.list = list;
    this.shown = shown;
    this.wrap = wrap;
  }

  render(chat) {
    const messages = chat.messages.slice(Math.max(0, chat.messages.length - this.shown));
    const list = this.list;
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    const wanted = new Set(messages.map((m) => m.id));
    for (const child of Array.from(list.children)) {
      if (!wanted.has(child.dataset.id)) child.remove();
    }
    let cursor = list.firstElementChild;
    for (const m of messages) {
      let node = cursor && cursor.dataset.id === m.id ? cursor : list.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
      if (node && node.classList.contains("is-held") !== Boolean(m.held)) {
        node.remove(); // approved: shown again as posted
        node = null;
      }
      if (!node) {
        node = messageNode(m);
        if (this.wrap) this.wrap(node, m);
      }
      if (node !== cursor) list.insertBefore(node, cursor);
      else cursor = cursor.nextElementSibling;
    }
    if (atEnd) list.scrollTop = list.scrollHeight;
  }
}

/** Floats `count` of `emoji` up from `box` (at most 6 at once: a busy room stays calm). */
export function floatReactions(box, emoji, count) {
  for (let i = 0; i < Math.min(count, 6); i += 1) {
    const node = el("span", "reaction-float", EMOJI[emoji]);
    node.style.setProperty("--drift", `${Math.round(Math.random() * 50 - 25)}px`);
    node.style.setProperty("--delay", `${i * 120}ms`);
    node.addEventListener("animationend", () => node.remove());
    box.append(node);
    box.dataset.floated = String(Number(box.dataset.floated || 0) + 1);
  }
}

// ---- comment-to-buy (docs/chat.md, "Comment-to-buy") ---------------------------------

/**
 * The hint under the chat box: "Type SOLD 3 to claim" (`size`: one of the product's
 * sizes, when it has several, for the example); "" when the show has no keyword or there
 * is no code to claim.
 */
export function claimHint(settings, code, size = "") {
  const keyword = settings && settings.keyword;
  if (!keyword || !Number.isInteger(code)) return "";
  const verb = settings.claim_mode === "buy" ? "buy it" : "claim it";
  return `Type ${keyword} ${code}${size ? ` ${size}` : ""} to ${verb}`;
}

function hoursMinutes(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * A `notice` answering a claim, in plain words for the buyer: {kind, text, link?:
 * {href, label}}; null for any other frame. `products`: the room's products (titles and
 * sizes); `keyword`: the show's, for the example of a size.
 */
export function claimNote(frame, products = {}, keyword = "SOLD") {
  if (typeof frame.code !== "string" || !frame.code.startsWith("claim.")) return null;
  const d = frame.data || {};
  const product = products[d.product];
  const variants = product && Array.isArray(product.variants) ? product.variants : [];
  const size = variants.length > 1 ? variants.find((v) => v.id === d.variant) : null;
  const title = product ? product.title : `#${d.code}`;
  const what = `${d.qty > 1 ? `${d.qty} × ` : ""}${title}${size ? `, size ${size.name}` : ""}`;
  const order = (label) => (d.order ? { href: `/me/orders/${encodeURIComponent(d.order)}`, label } : null);
  switch (frame.code) {
    case "claim.claimed":
      if (d.mode === "buy") {
        const paid = d.payment === "settled" ? "paid with your saved card" : "confirming your payment…";
        return { kind: "ok", text: `Bought: ${what} — ${paid}`, link: order("View order") };
      }
      if (d.held && d.expires_ms) {
        return { kind: "ok", text: `Claimed: ${what} — in your cart, held until ${hoursMinutes(d.expires_ms)}`,
          link: order("Pay now") };
      }
      return { kind: "ok", text: `Claimed: ${what} — in your cart`, link: order("Pay now") };
    case "claim.sold-out":
      return { kind: "error", text: `Sorry, ${title} is sold out.` };
    case "claim.limit-reached":
      return { kind: "error", text: `You've already claimed as many of ${title} as one buyer can.` };
    case "claim.no-wallet":
      return { kind: "error", text: "To buy from the chat, save an address and a card first.",
        link: { href: "/me/wallet", label: "Open your wallet" } };
    case "claim.unknown-code":
      return { kind: "error", text: `No product in this show has the code #${d.code}: look for the number on each card.` };
    case "claim.unknown-size": {
      const sizes = Array.isArray(d.sizes) ? d.sizes.map(String) : [];
      const example = sizes.length ? ` — e.g. "${keyword} ${d.code} ${sizes[0]}"` : "";
      return { kind: "error", text: `Which size of ${title}? Sizes: ${sizes.join(", ")}${example}.` };
    }
    case "claim.refused": {
      const why = String(d.detail || frame.message || "try again").replace(/\.$/, "");
      return { kind: "error", text: `Couldn't claim ${title}: ${why}.` };
    }
    default:
      return { kind: "info", text: frame.message || frame.code };
  }
}
