// Product cards for the viewer, the host preview and the OBS source: one DOM shape, kept in
// place across renders (a re-render never replaces the element a keyboard user has focused).
// Input is a card from overlay.js `view()`.

import { formatMoney } from "./overlay.js";

export function money(minor, currency) {
  try {
    return formatMoney(minor, currency || "USD");
  } catch (error) {
    return `${minor} ${currency}`; // an unknown currency code: still show the number
  }
}

// 83 -> "1:23"; countdowns come from view(), computed on server time.
export function clock(totalSeconds) {
  const s = Math.max(0, totalSeconds);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

export function dealText(deal, currency) {
  if (!deal) return "";
  if (deal.phase === "upcoming") {
    return `Deal ${money(deal.price_minor, currency)} in ${clock(deal.seconds_left)}`;
  }
  return `Deal ends in ${clock(deal.seconds_left)} · ${deal.units_left} at this price`;
}

// A stable hue per product for the image placeholder.
export function hueOf(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

// For counters inside aria-live regions: at most one change per `minMs` (the latest value
// wins), so a busy room does not make a screen reader read out every 100 ms tick.
const throttles = new WeakMap();
export function throttledText(node, text, minMs) {
  const now = performance.now();
  const t = throttles.get(node) || { at: -Infinity, timer: null, text: "" };
  throttles.set(node, t);
  t.text = text;
  if (t.timer) return;
  const wait = t.at + minMs - now;
  if (wait <= 0) {
    t.at = now;
    setText(node, text);
    return;
  }
  t.timer = setTimeout(() => {
    t.timer = null;
    t.at = performance.now();
    setText(node, t.text);
  }, wait);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function buyLabel(card) {
  if (card.can_buy) return "Buy";
  return card.stock_left <= 0 ? "Sold out" : "Unavailable";
}

/**
 * A card element. `onBuy(productId)` adds a Buy button; without it the card has no button
 * (OBS, host preview). `variant`: "pinned" | "row" (the tray) | "obs". A card with a
 * `code` (its show code, for comment-to-buy) shows it as "#3".
 */
export function createCard(card, { onBuy = null, variant = "pinned" } = {}) {
  const root = el("article", `card card--${variant}`);
  root.dataset.product = card.id;
  const titleId = `${variant}-title-${card.id}`;
  root.setAttribute("aria-labelledby", titleId);

  const media = el("div", "card-media");
  media.style.setProperty("--hue", String(hueOf(card.id)));
  const initial = el("span", "card-initial", (card.title || "?").trim().charAt(0).toUpperCase());
  initial.setAttribute("aria-hidden", "true");
  media.append(initial);
  const img = el("img", "card-img");
  img.alt = "";
  img.decoding = "async";
  img.hidden = true;
  img.addEventListener("load", () => { img.hidden = false; });
  media.append(img);
  // The product's show code (comment-to-buy: "SOLD 3"), when the page gives one.
  const code = el("span", "card-code");
  code.append(el("span", "visually-hidden", "Code "), el("span", "card-code-value"));
  code.hidden = true;
  media.append(code);

  const info = el("div", "card-info");
  const title = el("h3", "card-title");
  title.id = titleId;
  const price = el("p", "card-price");
  const now = el("span", "price-now");
  const was = el("s", "price-was");
  was.append(el("span", "visually-hidden", "was "), el("span", "price-was-value"));
  price.append(now, " ", was);
  const meta = el("p", "card-meta");
  const deal = el("span", "card-deal");
  deal.setAttribute("role", "timer"); // implicitly aria-live off: no announcement every second
  const dealLeft = el("span", "card-deal-left");
  const badge = el("span", "card-badge");
  meta.append(deal, " ", dealLeft, " ", badge);
  info.append(title, price, meta);
  root.append(media, info);

  if (onBuy) {
    const button = el("button", "btn buy-btn");
    button.type = "button";
    button.append(el("span", "buy-label", "Buy"), el("span", "visually-hidden buy-title"));
    button.addEventListener("click", () => onBuy(root.dataset.product, button));
    root.append(button);
  }
  updateCard(root, card);
  return root;
}

export function updateCard(root, card) {
  setText(root.querySelector(".card-title"), card.title);
  const code = root.querySelector(".card-code");
  code.hidden = !Number.isInteger(card.code);
  setText(code.querySelector(".card-code-value"), code.hidden ? "" : `#${card.code}`);
  const img = root.querySelector(".card-img");
  const src = card.image_url || "";
  if (img.getAttribute("src") !== src && (src || img.hasAttribute("src"))) {
    img.hidden = true;
    if (src) img.src = src;
    else img.removeAttribute("src");
  }
  setText(root.querySelector(".price-now"), money(card.price_minor, card.currency));
  const was = root.querySelector(".price-was");
  was.hidden = card.original_price_minor === null || card.original_price_minor === undefined;
  if (!was.hidden) {
    setText(was.querySelector(".price-was-value"), money(card.original_price_minor, card.currency));
  }
  const deal = root.querySelector(".card-deal");
  deal.hidden = !card.deal;
  deal.dataset.phase = card.deal ? card.deal.phase : "";
  setText(deal, card.deal && card.deal.phase === "open"
    ? `Deal ends in ${clock(card.deal.seconds_left)}` : dealText(card.deal, card.currency));
  const dealLeft = root.querySelector(".card-deal-left");
  dealLeft.hidden = !card.deal || card.deal.phase !== "open";
  setText(dealLeft, dealLeft.hidden ? "" : `${card.deal.units_left} at this price`);
  const badge = root.querySelector(".card-badge");
  badge.hidden = !card.badge;
  root.querySelector(".card-meta").hidden = deal.hidden && badge.hidden;
  badge.dataset.level = card.stock_left <= 0 ? "out" : card.badge.startsWith("only") ? "low" : "some";
  setText(badge, card.badge);
  root.classList.toggle("is-deal", Boolean(card.deal && card.deal.phase === "open"));
  root.classList.toggle("is-out", card.stock_left <= 0);
  const button = root.querySelector(".buy-btn");
  if (button) {
    button.disabled = !card.can_buy;
    setText(button.querySelector(".buy-label"), buyLabel(card));
    setText(button.querySelector(".buy-title"), ` ${card.title}`);
  }
}

/**
 * Make `container`'s children match `items` (keyed by `keyOf`) with the fewest DOM moves:
 * existing nodes are updated and reordered, never recreated.
 */
export function syncList(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of Array.from(container.children)) existing.set(child.dataset.key, child);
  const wanted = new Set();
  let cursor = container.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    wanted.add(key);
    let node = existing.get(key);
    if (node) {
      update(node, item);
    } else {
      node = create(item);
      node.dataset.key = key;
    }
    if (node !== cursor) container.insertBefore(node, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const [key, node] of existing) if (!wanted.has(key)) node.remove();
}

// "b*** bought 2 × Trail Runner" for the ticker.
export function tickerText(item, products) {
  const product = products && products[item.product];
  const name = product ? product.title : "an item";
  return item.qty > 1 ? `${item.buyer} bought ${item.qty} × ${name}` : `${item.buyer} bought ${name}`;
}

export function syncTicker(list, items, products, shown = 3) {
  syncList(list, items.slice(0, shown), (i) => i.order,
    (i) => el("li", "ticker-item", tickerText(i, products)),
    (node, i) => setText(node, tickerText(i, products)));
}

// Compact counts for small spaces: 1234 -> "1.2K".
export function compact(n) {
  return new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 }).format(n);
}
