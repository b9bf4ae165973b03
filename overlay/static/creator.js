// The creator page (/creator/{creator}): affiliate links with copy buttons, a form to make
// one, and the live earnings ticker from the creator's feed.

import { meta } from "./hub_client.js";
import { FeedClient, showStatus } from "./feed.js";
import { money, setText, syncList } from "./cards.js";
import { api, problemText } from "./api.js";
import { consoleAuth, explainNoAccess } from "./console_auth.js";
import { mountTeam } from "./team.js";

const $ = (id) => document.getElementById(id);
const creatorId = meta("livecart-target");
// The token of a creator link, or the signed-in account acting as this creator.
const access = await consoleAuth("livecart.token.creator", [`creator:${creatorId}`]);
const auth = access.auth || {};

const titles = new Map(); // product id -> title
let links = [];
let earnings = null;

function say(node, kind, text) {
  node.dataset.kind = kind;
  setText(node, text);
}

const productOfOrder = (order) => order.slice(0, Math.max(0, order.lastIndexOf(".")));

// Product names for links and the ledger (which names orders only), asked once per product.
const askedTitles = new Map(); // product id -> promise of its title
function loadTitle(productId) {
  if (!askedTitles.has(productId)) {
    askedTitles.set(productId, api("GET", `/api/v1/products/${encodeURIComponent(productId)}`).then((r) => {
      if (!r.ok) return null;
      titles.set(productId, r.data.title);
      renderEarnings();
      renderLinks();
      return r.data.title;
    }));
  }
  return askedTitles.get(productId);
}

function titleFor(productId) {
  if (productId && !titles.has(productId)) loadTitle(productId);
  return titles.get(productId);
}

// ---- links ------------------------------------------------------------------------------

async function loadLinks() {
  const [mine, front] = await Promise.all([
    api("GET", "/api/v1/me/links", auth),
    api("GET", `/api/v1/creators/${encodeURIComponent(creatorId)}/storefront`),
  ]);
  if (front.ok) for (const item of front.data.items) titles.set(item.product.id, item.product.title);
  if (!mine.ok) {
    say($("banner"), "error", problemText(mine));
    return;
  }
  links = mine.data.items;
  for (const link of links) titleFor(link.product_id);
  renderLinks();
  renderEarnings();
}

function createLink(link) {
  const li = document.createElement("li");
  li.className = "link-item";
  const title = document.createElement("p");
  title.className = "link-title";
  const url = document.createElement("code");
  url.className = "link-url";
  const actions = document.createElement("div");
  actions.className = "link-actions";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn btn-small btn-secondary copy-btn";
  const label = document.createElement("span");
  label.className = "copy-label";
  label.textContent = "Copy";
  const hidden = document.createElement("span");
  hidden.className = "visually-hidden copy-what";
  button.append(label, hidden);
  button.addEventListener("click", () => copy(li, button));
  actions.append(button);
  li.append(title, url, actions);
  updateLink(li, link);
  return li;
}

function updateLink(li, link) {
  const name = titles.get(link.product_id) || link.product_id;
  setText(li.querySelector(".link-title"), name);
  setText(li.querySelector(".link-url"), link.url);
  setText(li.querySelector(".copy-what"), ` link for ${name}`);
  li.dataset.url = link.url;
}

function renderLinks() {
  syncList($("links"), links, (l) => l.code, createLink, updateLink);
}

async function copy(li, button) {
  const url = li.dataset.url;
  const label = button.querySelector(".copy-label");
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch (error) {
    copied = false;
  }
  if (copied) {
    setText(label, "Copied");
    button.dataset.copied = "true";
    say($("link-status"), "ok", `Copied ${url}`);
    setTimeout(() => {
      setText(label, "Copy");
      button.dataset.copied = "false";
    }, 2500);
  } else {
    // No clipboard access (an insecure origin, or permission refused): select it instead.
    const range = document.createRange();
    range.selectNodeContents(li.querySelector(".link-url"));
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    say($("link-status"), "error",
      "Couldn't copy automatically: the link is selected, press Ctrl+C (or ⌘C) to copy it.");
  }
}

$("link-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("link-product");
  const productId = input.value.trim();
  if (!productId) return;
  const submit = $("link-submit");
  submit.disabled = true;
  submit.setAttribute("aria-busy", "true");
  const r = await api("POST", "/api/v1/links", { ...auth, body: { product_id: productId } });
  submit.disabled = false;
  submit.removeAttribute("aria-busy");
  if (!r.ok) {
    say($("link-status"), "error", r.status === 404 ? `No active product ${productId}.` : problemText(r));
    input.focus();
    return;
  }
  links = [r.data, ...links.filter((l) => l.code !== r.data.code)];
  if (!titles.has(productId)) await loadTitle(productId);
  renderLinks();
  input.value = "";
  say($("link-status"), "ok", `Link made for ${titles.get(productId) || productId}: ${r.data.url}`);
  const first = $("links").querySelector(".copy-btn");
  if (first) first.focus();
});

// ---- earnings ---------------------------------------------------------------------------

function ledgerKey(entry) {
  return `${entry.order}:${entry.kind}`;
}

function createEntry() {
  const li = document.createElement("li");
  li.className = "ledger-item";
  for (const cls of ["ledger-amount", "ledger-what", "ledger-when"]) {
    const span = document.createElement("span");
    span.className = cls;
    li.append(span);
  }
  return li;
}

function updateEntry(li, entry) {
  li.dataset.kind = entry.kind;
  const sign = entry.commission_minor < 0 ? "−" : "+";
  setText(li.querySelector(".ledger-amount"), `${sign}${money(Math.abs(entry.commission_minor), entry.currency)}`);
  const product = titleFor(productOfOrder(entry.order)) || "an order";
  const what = entry.kind === "reversal"
    ? `refund on ${product}`
    : `on ${product} (${money(Math.abs(entry.amount_minor), entry.currency)})`;
  setText(li.querySelector(".ledger-what"), what);
  const at = Number(entry.at);
  setText(li.querySelector(".ledger-when"), Number.isFinite(at)
    ? new Date(at).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" }) : "");
}

function renderEarnings() {
  if (!earnings) return;
  const amounts = Object.entries(earnings.earned_minor || {});
  if (!amounts.length) amounts.push([(earnings.ledger[0] && earnings.ledger[0].currency) || "USD", 0]);
  syncList($("earned"), amounts, ([c]) => c, ([c, v]) => {
    const li = document.createElement("li");
    li.className = "earned-amount";
    li.textContent = money(v, c);
    return li;
  }, (li, [c, v]) => setText(li, money(v, c)));
  setText($("earned-orders"), `${earnings.orders} ${earnings.orders === 1 ? "order" : "orders"}`);
  syncList($("ledger"), earnings.ledger.slice(0, 12), ledgerKey, (e) => {
    const li = createEntry();
    updateEntry(li, e);
    return li;
  }, updateEntry);
  $("ledger-empty").hidden = earnings.ledger.length > 0;
}

// ---- start ------------------------------------------------------------------------------

if (access.mode === "none") {
  explainNoAccess($("banner"), access, "this creator's page");
  showStatus($("conn"), "closed 0");
  $("link-submit").disabled = true;
} else {
  $("link-submit").disabled = false;  // disabled in the template until its handler is wired
  loadLinks();
  mountTeam($("moderators-panel"), {
    grant: `moderator:${creatorId}`, members: `/api/v1/creators/${encodeURIComponent(creatorId)}/moderators`,
    auth,
  });
  const feed = new FeedClient(`${meta("livecart-ws")}/ws/creators/${encodeURIComponent(creatorId)}/earnings`, {
    token: access.token,
    ticket: access.ticket,
    onMessage: (message) => {
      if (message.type !== "earnings") return;
      earnings = message;
      renderEarnings();
    },
    onStatus: (status) => showStatus($("conn"), status),
  });
  window.addEventListener("pagehide", () => feed.close());
}
