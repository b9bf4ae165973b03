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
