// The orders page (/me/orders): every order of the signed-in buyer, newest first, a page
// at a time, with its tracking, refunds and return; each opens its receipt (where a return
// is asked for), and one that has not shipped can be cancelled here.

import { money } from "./cards.js";
import { api, pageSession, problemText, signinHref } from "./api.js";
import {
  cancellable, cancelOrder, refundWords, returnable, returnWords, stateWords, trackingWords, when,
} from "./order_words.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;
let session = null;
let cursor = 0;

function say(kind, text) {
  const box = $("banner");
  box.dataset.kind = kind;
  box.textContent = text;
}

function el(tag, className, text = "") {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

function row(order) {
  const li = el("li", "entry order");
  li.dataset.key = order.id;
  const link = el("a", "order-link");
  link.href = `/me/orders/${encodeURIComponent(order.id)}`;
  const title = order.title || order.product;
  link.append(el("span", "order-title", title),
    el("span", "order-meta", `${order.qty} × ${money(order.unit_price_minor, order.currency)} · `
      + `${money(order.amount_minor, order.currency)}`),
    el("span", "order-when", when(order.created_ms)));
  link.setAttribute("aria-label", `${title}, ${money(order.amount_minor, order.currency)}, `
    + `${stateWords(order)}: receipt`);
  const state = el("p", "state", stateWords(order));
  state.dataset.state = order.state;
  li.append(link, state);
  for (const [kind, text] of [["tracking", trackingWords(order)],
    ["refund", refundWords(order, money)], ["return", returnWords(order)]]) {
    if (!text) continue;
    const note = el("p", "order-note", text);
    note.dataset.note = kind;
    li.append(note);
  }
  if (returnable(order)) {
    const back = el("a", "btn btn-secondary btn-small", "Return");
    back.href = `/me/orders/${encodeURIComponent(order.id)}#return`;
    back.setAttribute("aria-label", `Return ${title}`);
    li.append(back);
  }
  if (cancellable(order)) {
    const cancel = el("button", "btn btn-secondary btn-small", "Cancel");
    cancel.type = "button";
    cancel.setAttribute("aria-label", `Cancel ${title}`);
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      const r = await cancelOrder(api, order.id, session.csrf);
      if (!r.ok) {
        cancel.disabled = false;
        say("error", problemText(r));
        return;
      }
      say("ok", `${title}: cancelled. You won't be charged.`);
      li.replaceWith(row(r.data));
    });
    li.append(cancel);
  }
  return li;
}

async function more() {
  $("more").disabled = true;
  const r = await api("GET", `/api/v1/me/orders?limit=${PAGE}&cursor=${cursor}`);
  $("more").disabled = false;
  if (!r.ok) {
    say("error", `Couldn't load your orders: ${problemText(r)}`);
    return;
  }
  $("orders").append(...r.data.items.map(row));
  $("orders-empty").hidden = $("orders").children.length > 0;
  cursor = r.data.next_cursor;
  $("more").hidden = cursor === null;
}

$("more").addEventListener("click", more);

async function init() {
  session = await pageSession();
  if (!session) {
    location.replace(signinHref());
    return;
  }
  await more();
}

init();
