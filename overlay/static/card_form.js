// The card form of the pages (the wallet, the buy sheet). The card is tokenized in the
// page and never reaches livecart; the caller gets an opaque token to save in the wallet.
// Which gateway takes the card, the node says (GET /api/v1/payments/config):
// - sandbox: our own fields; the number and CVC go to the sandbox's tokenizer
//   (POST /sandbox/tokens) and nowhere else; the inputs are cleared once the token is back.
// - stripe: Stripe.js's card Element (Stripe's own fields), loaded from Stripe; a SetupIntent
//   made for the buyer (POST /api/v1/me/cards/setup) is confirmed in the page with
//   stripe.confirmCardSetup, then POST /api/v1/me/cards gives the saved card's token.

import { api, problemText } from "./api.js";

const FIELDS = [
  // [name, label, autocomplete, placeholder, maxLength]
  ["number", "Card number", "cc-number", "4242 4242 4242 4242", 23],
  ["exp", "Expiry", "cc-exp", "MM/YY", 7],
  ["cvc", "CVC", "cc-csc", "123", 4],
];

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// "12/30", "12 / 2030", "1/30" -> [12, 2030]; anything else -> [NaN, NaN] (the server says why).
export function parseExpiry(text) {
  const match = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(text);
  if (!match) return [NaN, NaN];
  const year = Number(match[2]);
  return [Number(match[1]), match[2].length === 2 ? 2000 + year : year];
}

// Digits in groups of four, as printed on the card.
export function groupDigits(text) {
  return text.replace(/\D/g, "").slice(0, 19).replace(/(\d{4})(?=\d)/g, "$1 ");
}

/**
 * Renders the form into `container`. `onToken({token, brand?, last4?, ...})` runs once the
 * gateway has the card; `auth()` gives api()'s {csrf} or {token} (Stripe's setup is the
 * buyer's). `beforeSubmit`, if given, runs first on each submit (an async function; false
 * stops the submit: the buy sheet saves the address it shows beside the card this way,
 * with one button for both). Returns the form element at once; its fields follow (`ready`).
 */
export function mountCardForm(container, { onToken, auth = () => ({}), submitLabel = "Save card",
                                           beforeSubmit = null } = {}) {
  const fields = el("div", { className: "card-fields" });
  const status = el("p", { className: "card-status", role: "alert" });
  const submit = el("button", { type: "submit", textContent: submitLabel, disabled: true });
  const form = el("form", { className: "card-form", noValidate: true }, [fields, status, submit]);
  container.append(form);
  let gateway = null;

  // `form.ready`: resolves once the fields are in (the caller may focus the first one).
  form.ready = paymentsConfig().then(async (config) => {
    gateway = config.gateway === "stripe" ? await stripeFields(fields, config, auth)
      : sandboxFields(fields, config.tokenizer || "/sandbox/tokens");
    submit.disabled = false;
  }).catch(() => {
    status.textContent = "The card form couldn't load. Check your connection and reload the page.";
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!gateway || !gateway.ready()) return;
    submit.disabled = true;
    if (beforeSubmit && !(await beforeSubmit())) {
      submit.disabled = false;
      return;
    }
    status.textContent = "Checking your card…";
    const outcome = await gateway.tokenize();
    submit.disabled = false;
    status.textContent = outcome.message;
    if (outcome.card && onToken) onToken(outcome.card);
  });
  return form;
}

let configAsked = null;

// The node's answer, asked once per page.
function paymentsConfig() {
  configAsked = configAsked || api("GET", "/api/v1/payments/config").then((r) => {
    if (!r.ok) throw new Error(`payments config: ${r.status}`);
    return r.data;
  });
  configAsked.catch(() => { configAsked = null; });
  return configAsked;
}

// ---- sandbox: our fields, the sandbox's tokenizer

function sandboxFields(container, tokenizer) {
  const inputs = {};
  const hints = {};
  const rows = FIELDS.map(([name, label, autocomplete, placeholder, maxLength]) => {
    inputs[name] = el("input", {
      name, autocomplete, placeholder, maxLength, inputMode: "numeric", required: true,
      spellcheck: false,
    });
    hints[name] = el("small", { className: "card-field-error", id: `card-${name}-error` });
    inputs[name].setAttribute("aria-describedby", hints[name].id);
    return el("label", { className: `card-field card-${name}` },
      [el("span", { textContent: label }), inputs[name], hints[name]]);
  });
  container.append(...rows);
  inputs.number.addEventListener("input", () => {
    inputs.number.value = groupDigits(inputs.number.value);
  });

  function showErrors(errors) {
    for (const name of Object.keys(inputs)) {
      hints[name].textContent = "";
      inputs[name].removeAttribute("aria-invalid");
    }
    for (const { field, message } of errors) {
      const name = field === "exp_month" || field === "exp_year" ? "exp" : field;
      if (!inputs[name]) continue;
      hints[name].textContent = hints[name].textContent || message;
      inputs[name].setAttribute("aria-invalid", "true");
    }
  }

  return {
    ready() {
      if (!Number.isNaN(parseExpiry(inputs.exp.value)[0])) return true;
      showErrors([{ field: "exp_month", message: "use MM/YY" }]);
      return false;
    },
    async tokenize() {
      const [month, year] = parseExpiry(inputs.exp.value);
      const r = await api("POST", tokenizer, { body: {
        number: inputs.number.value, exp_month: month, exp_year: year, cvc: inputs.cvc.value,
      } });
      if (r.status === 201) {
        showErrors([]);
        inputs.number.value = "";
        inputs.cvc.value = "";
        return { card: r.data, message: `${r.data.brand} ending in ${r.data.last4} saved.` };
      }
      showErrors(r.data && Array.isArray(r.data.errors) ? r.data.errors : []);
      return { message: r.status === 422 ? "Check the card's details." : problemText(r) };
    },
  };
}

// ---- stripe: Stripe.js's card Element and a SetupIntent

let stripeLoaded = null;

function loadStripe(url) {
  stripeLoaded = stripeLoaded || new Promise((resolve, reject) => {
    const script = el("script", { src: url, async: true });
    script.addEventListener("load", () => (window.Stripe ? resolve(window.Stripe) : reject(new Error("no Stripe"))));
    script.addEventListener("error", () => reject(new Error("Stripe.js did not load")));
    document.head.append(script);
  });
  stripeLoaded.catch(() => { stripeLoaded = null; });
  return stripeLoaded;
}

async function stripeFields(container, config, auth) {
  const Stripe = await loadStripe(config.js_url);
  const stripe = Stripe(config.publishable_key);
  const card = stripe.elements().create("card", { hidePostalCode: true });
  const slot = el("div", { className: "card-element" });
  const hint = el("small", { className: "card-field-error", id: "card-element-error" });
  container.append(el("div", { className: "card-field" },
    [el("span", { textContent: "Card" }), slot, hint]));
  card.mount(slot);
  card.on("change", (event) => { hint.textContent = event.error ? event.error.message : ""; });
  return {
    ready: () => true,
    async tokenize() {
      const setup = await api("POST", "/api/v1/me/cards/setup", { ...auth() });
      if (!setup.ok) return { message: problemText(setup) };
      const result = await stripe.confirmCardSetup(setup.data.client_secret, {
        payment_method: { card } });
      if (result.error) return { message: result.error.message || "The card was refused." };
      const saved = await api("POST", "/api/v1/me/cards", { ...auth(), body: {
        setup_intent: result.setupIntent.id } });
      if (!saved.ok) return { message: problemText(saved) };
      card.clear();
      return { card: { token: saved.data.payment_token }, message: "Card saved." };
    },
  };
}
