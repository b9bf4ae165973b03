// The host console's chat pane (docs/chat.md, "Moderation"): every message of the show, held
// ones marked; a message picked is deleted, or its sender timed out or banned; the settings,
// the announcement, clearing, the held queue, the blocked words and the moderation log. The
// creator, its moderators and operators use it alike: messages go over the room socket,
// every moderation action over HTTP with the console's auth.

import { api, problemText } from "./api.js";
import { setText } from "./cards.js";
import { ChatList, chatInitial, chatReduce, CHAT_ERRORS, refusalText, settingsText } from "./chat.js";

const KEPT = 200; // messages the pane keeps (and shows, scrolling)
const CLAIMS_SHOWN = 50; // the newest claims listed
const CLAIMS_POLL_MS = 2000; // the claims list is read again this often while the console is seen

// A claim's outcome for the host (docs/chat.md, "Comment-to-buy").
const OUTCOMES = {
  "claim.claimed": "Claimed", "claim.sold-out": "Sold out", "claim.limit-reached": "Limit reached",
  "claim.no-wallet": "No wallet", "claim.unknown-code": "Unknown code",
  "claim.unknown-size": "No such size", "claim.refused": "Refused",
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * `base`: the stream's API path; `creator`: its creator (the blocked words are the
 * channel's); `auth`: api() options; `send`: the room socket's send; `products()`: the
 * room's products (titles and sizes for the claims list). Returns the function that takes
 * each hub message.
 */
export function mountModeration({ base, creator, auth, send, products = () => ({}) }) {
  let chat = chatInitial();
  let picked = null; // the message the action bar acts on
  let refs = 0;
  const pending = new Set();
  const list = new ChatList($("mod-chat"), { shown: KEPT, wrap: pickable });
  const creatorBase = `/api/v1/creators/${encodeURIComponent(creator)}`;

  function status(kind, text) {
    const node = $("mod-status");
    node.dataset.kind = kind;
    setText(node, text);
  }

  async function call(method, path, body, done) {
    const r = await api(method, path, { ...auth, body });
    if (r.ok) status("ok", done);
    else status("error", problemText(r));
    return r;
  }

  // A message is a button: a press picks it for the action bar.
  function pickable(node, message) {
    const button = el("button", "chat-pick");
    button.type = "button";
    button.setAttribute("aria-pressed", "false");
    button.append(...node.childNodes);
    button.addEventListener("click", () => pick(message));
    node.append(button);
  }

  function pick(message) {
    picked = message;
    for (const b of $("mod-chat").querySelectorAll(".chat-pick")) {
      b.setAttribute("aria-pressed", String(b.closest("li").dataset.id === message.id));
    }
    setText($("mod-picked"), `${message.name}: ${message.text}`);
    $("mod-actions").hidden = false;
    $("mod-delete").focus();
  }

  function unpick() {
    picked = null;
    $("mod-actions").hidden = true;
    for (const b of $("mod-chat").querySelectorAll('.chat-pick[aria-pressed="true"]')) {
      b.setAttribute("aria-pressed", "false");
    }
  }

  function drop(id) {
    chat = { ...chat, messages: chat.messages.filter((m) => m.id !== id) };
    list.render(chat);
  }

  function render() {
    list.render(chat);
    const mode = settingsText(chat.settings);
    setText($("chat-mode-note"), mode || "Pick a message to delete it or time out, or ban, its sender.");
    const now = $("mod-announcement-now");
    now.hidden = !chat.announcement;
    setText(now, chat.announcement ? `Pinned: ${chat.announcement}` : "");
    if (picked && !chat.messages.some((m) => m.id === picked.id)) unpick();
  }

  // The form shows the room's settings, unless someone is editing it.
  function fillSettings() {
    const form = $("chat-settings");
    if (form.contains(document.activeElement)) return;
    const s = chat.settings;
    if (typeof s.slow_s === "number") $("slow-s").value = String(s.slow_s);
    $("followers-only").checked = Boolean(s.followers_only);
    if (typeof s.keyword === "string") $("claim-keyword").value = s.keyword;
    if (s.claim_mode) $("claim-mode").value = s.claim_mode;
  }

  // ---- actions on the picked message -------------------------------------------------

  const acts = {
    "mod-delete": (m) => call("DELETE", `${base}/chat/messages/${encodeURIComponent(m.id)}`, undefined,
      "Message deleted."),
    "mod-timeout-60": (m) => call("POST", `${base}/chat/bans`, { user: m.user, scope: "show", duration_s: 60 },
      `${m.name} is timed out for 60 s.`),
    "mod-timeout-600": (m) => call("POST", `${base}/chat/bans`, { user: m.user, scope: "show", duration_s: 600 },
      `${m.name} is timed out for 10 minutes.`),
    "mod-ban-show": (m) => call("POST", `${base}/chat/bans`, { user: m.user, scope: "show" },
      `${m.name} is banned from this show.`),
    "mod-ban-channel": (m) => call("POST", `${base}/chat/bans`, { user: m.user, scope: "channel" },
      `${m.name} is banned from every show of the channel.`),
  };
  for (const [id, act] of Object.entries(acts)) {
    $(id).addEventListener("click", async () => {
      if (!picked) return;
      const message = picked;
      const r = await act(message);
      if (r.ok) {
        unpick();
        loadAudit();
      }
    });
  }
  $("mod-cancel").addEventListener("click", unpick);

  // ---- the host's own messages -------------------------------------------------------

  $("mod-send").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("mod-input").value;
    if (!text.trim()) return;
    refs += 1;
    const ref = `modchat-${refs}`;
    if (!send({ type: "chat", text, ref })) {
      status("error", "Not connected: try again in a moment.");
      return;
    }
    pending.add(ref);
  });

  // ---- settings, announcement, clearing ----------------------------------------------

  $("chat-settings").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      slow_s: Number($("slow-s").value), followers_only: $("followers-only").checked,
      keyword: $("claim-keyword").value.trim(), claim_mode: $("claim-mode").value,
    };
    const r = await call("PATCH", `${base}/chat/settings`, body, "Settings saved.");
    if (r.ok) loadAudit();
  });

  $("announcement-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("announcement-text").value.trim();
    if (!text) return;
    const r = await call("PUT", `${base}/chat/announcement`, { text }, "Announcement pinned.");
    if (r.ok) loadAudit();
  });

  $("announcement-remove").addEventListener("click", async () => {
    const r = await call("DELETE", `${base}/chat/announcement`, undefined, "Announcement removed.");
    if (r.ok) {
      $("announcement-text").value = "";
      loadAudit();
    }
  });

  // Clearing empties every screen: the first press arms it, a second within 4 s acts.
  let clearTimer = null;
  $("chat-clear").addEventListener("click", async () => {
    const button = $("chat-clear");
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      setText(button, "Press again to clear");
      clearTimer = setTimeout(() => {
        button.dataset.armed = "false";
        setText(button, "Clear chat");
      }, 4000);
      return;
    }
    clearTimeout(clearTimer);
    button.dataset.armed = "false";
    setText(button, "Clear chat");
    const r = await call("POST", `${base}/chat/clear`, undefined, "Chat cleared on every screen.");
    if (r.ok) loadAudit();
  });

  // ---- the held queue ----------------------------------------------------------------

  async function loadHeld() {
    const r = await api("GET", `${base}/chat/held`, auth);
    if (!r.ok) return;
    const items = Array.isArray(r.data) ? r.data : r.data.items || r.data.messages || [];
    const box = $("held-list");
    box.replaceChildren(...items.map(heldItem));
  }

  function heldItem(m) {
    const li = el("li", "held-item");
    li.dataset.id = m.id;
    const text = el("span", "held-text");
    text.append(el("span", "chat-name", String(m.name || m.user || "")), " ", el("span", "chat-text", String(m.text ?? "")));
    const approve = el("button", "btn btn-small", "Approve");
    approve.type = "button";
    approve.setAttribute("aria-label", `Approve: ${m.text}`);
    approve.addEventListener("click", async () => {
      const r = await call("POST", `${base}/chat/held/${encodeURIComponent(m.id)}/approve`, undefined,
        "Approved: posted to the chat.");
      if (r.ok) settled(m.id);
    });
    const reject = el("button", "btn btn-small btn-secondary", "Reject");
    reject.type = "button";
    reject.setAttribute("aria-label", `Reject: ${m.text}`);
    reject.addEventListener("click", async () => {
      const r = await call("DELETE", `${base}/chat/held/${encodeURIComponent(m.id)}`, undefined, "Rejected.");
      if (r.ok) settled(m.id);
    });
    li.append(text, approve, reject);
    return li;
  }

  // Approved or rejected: out of the queue, and its held copy out of the list.
  function settled(id) {
    const held = chat.messages.find((m) => m.id === id && m.held);
    if (held) drop(id);
    loadHeld();
    loadAudit();
  }

  // ---- blocked words -----------------------------------------------------------------

  async function loadBlocked() {
    const r = await api("GET", `${creatorBase}/chat/blocked-words`, auth);
    if (r.ok && Array.isArray(r.data.words)) $("blocked-words").value = r.data.words.join("\n");
  }

  $("blocked-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const words = $("blocked-words").value.split("\n").map((w) => w.trim()).filter(Boolean);
    const r = await call("PUT", `${creatorBase}/chat/blocked-words`, { words }, "Blocked words saved.");
    if (r.ok) loadAudit();
  });

  // ---- the moderation log ------------------------------------------------------------

  async function loadAudit() {
    const r = await api("GET", `${base}/chat/audit`, auth);
    if (!r.ok) return;
    const items = Array.isArray(r.data) ? r.data : r.data.items || r.data.entries || [];
    $("audit-list").replaceChildren(...items.map(auditItem));
  }

  function auditItem(entry) {
    const li = el("li", "audit-item");
    const at = entry.at_ms ? new Date(entry.at_ms).toLocaleTimeString() : "";
    li.append(el("span", "audit-when", at));
    const who = entry.by || entry.actor || "";
    const what = entry.action || entry.what || "";
    const detail = Object.entries(entry)
      .filter(([k]) => !["at_ms", "by", "actor", "action", "what"].includes(k))
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    li.append(`${who} ${what}${detail ? ` (${detail})` : ""}`);
    return li;
  }

  $("audit-refresh").addEventListener("click", loadAudit);

  // ---- comment-to-buy claims ---------------------------------------------------------
  // Read every CLAIMS_POLL_MS while the page is seen (a claim is any buyer's comment, on any
  // node: polling the one list is simpler and as sure as watching the chat for them).

  let claimsShown = null; // the last list drawn, as JSON: redrawn only when it changed

  async function loadClaims() {
    if (document.visibilityState === "visible") {
      const r = await api("GET", `${base}/chat/claims?limit=${CLAIMS_SHOWN}`, auth);
      if (r.ok && Array.isArray(r.data.items)) renderClaims(r.data.items);
      if (r.status === 403) return; // not this console's to see: stop asking
    }
    setTimeout(loadClaims, CLAIMS_POLL_MS);
  }

  function renderClaims(items) {
    const drawn = JSON.stringify([items, Object.keys(products())]); // titles come with the room
    if (drawn === claimsShown) return;
    claimsShown = drawn;
    const rows = items.map(claimRow);
    if (!rows.length) {
      const empty = el("tr", "claims-empty");
      const td = el("td", "", "No claims yet.");
      td.colSpan = 7;
      empty.append(td);
      rows.push(empty);
    }
    $("claims-list").replaceChildren(...rows);
  }

  function claimRow(c) {
    const product = products()[c.product];
    const variant = product && product.variants.length > 1
      ? product.variants.find((v) => v.id === c.variant) : null;
    const outcome = OUTCOMES[c.outcome] || String(c.outcome || "");
    const how = c.outcome === "claim.claimed"
      ? (c.mode === "buy" ? ` · paid (${c.payment || "pending"})` : c.held ? " · held in the cart" : " · in the cart")
      : c.outcome === "claim.refused" && c.detail ? `: ${c.detail}` : "";
    const tr = el("tr", "claim");
    const cells = [
      [c.at_ms ? new Date(c.at_ms).toLocaleTimeString() : "", ""],
      [String(c.name || c.user || ""), ""],
      [Number.isInteger(c.code) ? `#${c.code}` : "", "num"],
      [product ? product.title : c.product ? String(c.product) : "—", ""],
      [variant ? String(variant.name) : c.variant && c.variant !== "default" ? String(c.variant) : "—", ""],
      [String(c.qty ?? ""), "num"],
      [outcome + how, "claims-outcome"],
    ];
    for (const [text, className] of cells) tr.append(el("td", className, text));
    tr.lastElementChild.dataset.outcome = String(c.outcome || "");
    return tr;
  }

  loadHeld();
  loadBlocked();
  loadAudit();
  loadClaims();

  return function receive(message) {
    const before = chat;
    chat = chatReduce(chat, message, KEPT);
    if (chat !== before) render();
    if (chat.settings !== before.settings) fillSettings();
    if (message.type === "chat" && (message.messages || []).some((m) => m.held)) loadHeld();
    const mine = message.ref !== undefined && pending.has(message.ref);
    if (message.type === "error" && (mine || CHAT_ERRORS.has(message.code))) status("error", refusalText(message));
    else if (message.type === "notice") status("", message.message || message.code);
    if (mine && message.type === "ack") $("mod-input").value = "";
    if (mine) pending.delete(message.ref);
  };
}
