// The wallet page (/me/wallet): the buyer's shipping addresses and cards, each with its
// default; add, edit or remove an address, add or remove a card (the card form tokenizes in
// the page: the number goes to the gateway's tokenizer only), pick the defaults.

import { api, pageSession, problemText, signinHref } from "./api.js";
import { mountCardForm } from "./card_form.js";
import { addressLine, cardLine, loadWallet, mountAddressForm, saveCard } from "./wallet_forms.js";

const $ = (id) => document.getElementById(id);
let session = null;
const auth = () => ({ csrf: session ? session.csrf : null });
const BASE = "/api/v1/me/wallet";

function say(kind, text) {
  const box = $("banner");
  box.dataset.kind = kind;
  box.textContent = text;
}

function button(label, onClick, { name = label, kind = "btn-secondary" } = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn ${kind} btn-small`;
  b.textContent = label;
  if (name !== label) b.setAttribute("aria-label", name);
  b.addEventListener("click", onClick);
  return b;
}

// One address or card: its words, "Default" or a way to make it so, and its actions.
function entry(text, isDefault, actions) {
  const li = document.createElement("li");
  li.className = "entry";
  const p = document.createElement("p");
  p.className = "entry-text";
  p.textContent = text;
  li.append(p);
  if (isDefault) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "Default";
    li.append(badge);
  }
  const row = document.createElement("div");
  row.className = "entry-actions";
  row.append(...actions);
  li.append(row);
  return li;
}

async function change(method, path, done) {
  const r = await api(method, `${BASE}${path}`, auth());
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  say("ok", done);
  await reload();
}

function editAddress(li, address) {
  li.replaceChildren();
  const form = mountAddressForm(li, { auth, entry: address, submitLabel: "Save changes",
    onSaved: async () => {
      say("ok", "Address saved.");
      await reload();
    } });
  form.focus();
}

function renderAddresses(wallet) {
  const list = $("addresses");
  list.replaceChildren(...wallet.addresses.map((a) => {
    const line = addressLine(a);
    const isDefault = a.id === wallet.defaultAddress;
    const actions = [];
    if (!isDefault) {
      actions.push(button("Make default", () => change("POST", `/addresses/${a.id}/default`,
        "Default address changed."), { name: `Make default: ${line}` }));
    }
    const li = entry(line, isDefault, actions);
    actions.push(button("Edit", () => editAddress(li, a), { name: `Edit ${line}` }));
    actions.push(button("Remove", () => change("DELETE", `/addresses/${a.id}`, "Address removed."),
      { name: `Remove ${line}` }));
    li.querySelector(".entry-actions").replaceChildren(...actions);
    return li;
  }));
  $("addresses-empty").hidden = wallet.addresses.length > 0;
}

function renderCards(wallet) {
  $("cards").replaceChildren(...wallet.cards.map((c) => {
    const line = cardLine(c);
    const isDefault = c.id === wallet.defaultCard;
    const actions = [];
    if (!isDefault) {
      actions.push(button("Make default", () => change("POST", `/cards/${c.id}/default`,
        "Default card changed."), { name: `Make default: ${line}` }));
    }
    actions.push(button("Remove", () => change("DELETE", `/cards/${c.id}`, "Card removed."),
      { name: `Remove ${line}` }));
    return entry(line, isDefault, actions);
  }));
  $("cards-empty").hidden = wallet.cards.length > 0;
}

async function reload() {
  const wallet = await loadWallet(auth);
  if (wallet.error) {
    say("error", `Couldn't load your wallet: ${problemText(wallet.error)}`);
    return;
  }
  renderAddresses(wallet);
  renderCards(wallet);
}

$("add-address").addEventListener("click", () => {
  const slot = $("address-slot");
  slot.replaceChildren();
  slot.hidden = false;
  $("add-address").hidden = true;
  const form = mountAddressForm(slot, { auth, onSaved: async () => {
    slot.hidden = true;
    slot.replaceChildren();
    $("add-address").hidden = false;
    say("ok", "Address added.");
    await reload();
  } });
  form.focus();
});

$("add-card").addEventListener("click", async () => {
  const slot = $("card-slot");
  slot.replaceChildren();
  slot.hidden = false;
  $("add-card").hidden = true;
  const form = mountCardForm(slot, { auth, onToken: async (card) => {
    const r = await saveCard(auth, card.token);
    if (!r.ok) {
      say("error", `Couldn't save the card: ${problemText(r)}`);
      return;
    }
    slot.hidden = true;
    slot.replaceChildren();
    $("add-card").hidden = false;
    say("ok", `${cardLine(r.data)} added.`);
    await reload();
  } });
  await form.ready;
  const first = slot.querySelector("input");
  if (first) first.focus();
});

async function init() {
  session = await pageSession();
  if (!session) {
    location.replace(signinHref());
    return;
  }
  await reload();
}

init();
