// The wallet's pieces that the wallet page and the viewer's buy sheet share: reading the
// wallet, the address form, saving a card from the card form's token, and how addresses
// and cards read for people. Every call takes `auth()`: the caller's {token} or {csrf}.

import { api } from "./api.js";

const BASE = "/api/v1/me/wallet";

const FIELDS = [
  // [name, label, autocomplete, required, maxLength]
  ["name", "Full name", "name", true, 120],
  ["line1", "Street address", "address-line1", true, 120],
  ["line2", "Apartment, suite (optional)", "address-line2", false, 120],
  ["city", "City", "address-level2", true, 120],
  ["postal_code", "Postal code", "postal-code", true, 20],
  ["country", "Country code", "country", true, 2],
];

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** {addresses, cards, defaultAddress, defaultCard}, or {error} with the failed answer. */
export async function loadWallet(auth) {
  const [a, c] = await Promise.all([api("GET", `${BASE}/addresses`, auth()),
    api("GET", `${BASE}/cards`, auth())]);
  if (!a.ok) return { error: a };
  if (!c.ok) return { error: c };
  return { addresses: a.data.items, defaultAddress: a.data.default_id, cards: c.data.items,
    defaultCard: c.data.default_id };
}

/** Saves the card of a token from the card form, as the default one. */
export function saveCard(auth, token) {
  return api("POST", `${BASE}/cards`, { ...auth(), body: { token, default: true } });
}

export function addressLine(a) {
  return [a.name, a.line1, a.line2, `${a.postal_code} ${a.city}`, a.country].filter(Boolean).join(", ");
}

const BRANDS = { visa: "Visa", mastercard: "Mastercard", amex: "American Express",
  discover: "Discover", diners: "Diners Club", jcb: "JCB", unionpay: "UnionPay" };

/** "Visa ending in 4242": a card as an order's receipt keeps it. */
export function cardName(c) {
  return `${BRANDS[c.brand] || c.brand} ending in ${c.last4}`;
}

/** A saved card with its expiry: "Visa ending in 4242, expires 12/30". */
export function cardLine(c) {
  return `${cardName(c)}, expires ${String(c.exp_month).padStart(2, "0")}/${String(c.exp_year).slice(-2)}`;
}

/**
 * An address form in `container`. `entry`: an address to edit (PUT) rather than add (POST).
 * `onSaved(entry)` runs after its own submit button saved it; `submitLabel: null` leaves the
 * button out (the buy sheet saves it through `save()` with the card form's button).
 * Returns {form, save}: `save()` sends it and answers the saved entry, or null after showing
 * what is wrong; once saved, saving again edits the same address.
 */
export function mountAddressForm(container, { auth, onSaved = null, entry = null,
                                              submitLabel = "Save address", makeDefault = false }) {
  let saved = entry;
  const inputs = {};
  const hints = {};
  const rows = FIELDS.map(([name, label, autocomplete, required, maxLength]) => {
    inputs[name] = el("input", { name, autocomplete, required, maxLength, spellcheck: false,
      value: entry ? entry[name] || "" : "" });
    hints[name] = el("small", { className: "field-error" });
    hints[name].id = `address-${name}-error-${Math.random().toString(36).slice(2, 8)}`;
    inputs[name].setAttribute("aria-describedby", hints[name].id);
    return el("label", { className: `field address-${name}` }, [label, inputs[name], hints[name]]);
  });
  inputs.country.placeholder = "US";
  inputs.country.addEventListener("input", () => {
    inputs.country.value = inputs.country.value.toUpperCase();
  });
  const status = el("p", { className: "form-status", role: "alert" });
  const children = [...rows, status];
  let button = null;
  if (submitLabel) {
    button = el("button", { type: "submit", className: "btn btn-block", textContent: submitLabel });
    children.push(button);
  }
  const form = el("form", { className: "address-form", noValidate: true }, children);

  function showErrors(errors) {
    for (const name of Object.keys(inputs)) {
      hints[name].textContent = "";
      inputs[name].removeAttribute("aria-invalid");
    }
    for (const { field, message } of errors) {
      if (!inputs[field]) continue;
      hints[field].textContent = hints[field].textContent || message;
      inputs[field].setAttribute("aria-invalid", "true");
    }
  }

  async function save() {
    const missing = FIELDS.filter(([name, , , required]) => required && !inputs[name].value.trim())
      .map(([name]) => ({ field: name, message: "required" }));
    showErrors(missing);
    if (missing.length) {
      status.textContent = "Fill in the address.";
      inputs[missing[0].field].focus();
      return null;
    }
    const body = {};
    for (const [name] of FIELDS) body[name] = inputs[name].value.trim();
    if (!saved && makeDefault) body.default = true;
    const r = saved
      ? await api("PUT", `${BASE}/addresses/${encodeURIComponent(saved.id)}`, { ...auth(), body })
      : await api("POST", `${BASE}/addresses`, { ...auth(), body });
    if (!r.ok) {
      showErrors(r.data && Array.isArray(r.data.errors) ? r.data.errors : []);
      status.textContent = r.status === 422 ? "Check the address." : (r.data && r.data.detail) || "Couldn't save the address.";
      return null;
    }
    saved = r.data;
    status.textContent = "";
    return saved;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button) button.disabled = true;
    const done = await save();
    if (button) button.disabled = false;
    if (done && onSaved) onSaved(done);
  });
  container.append(form);
  return { form, save, focus: () => inputs.name.focus() };
}
