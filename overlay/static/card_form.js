// A card form that tokenizes in the page, as Stripe.js does for Stripe: the number and the
// CVC go to the sandbox gateway's tokenizer (POST /sandbox/tokens) and nowhere else; the
// caller gets the opaque token and the card's summary, and sends only the token on to
// livecart's wallet API. The inputs are cleared once the token is back.

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
 * Renders the form into `container`. `onToken({token, brand, last4, exp_month, exp_year})`
 * runs once the sandbox answers; `endpoint` is the tokenizer's path. `beforeSubmit`, if
 * given, runs first on each submit (an async function; false stops the submit: the buy
 * sheet saves the address it shows beside the card this way, with one button for both).
 * Returns the form element.
 */
export function mountCardForm(container, { onToken, endpoint = "/sandbox/tokens",
                                           submitLabel = "Save card", beforeSubmit = null } = {}) {
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
  const status = el("p", { className: "card-status", role: "alert" });
  const submit = el("button", { type: "submit", textContent: submitLabel });
  const form = el("form", { className: "card-form", noValidate: true }, [...rows, status, submit]);
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

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [month, year] = parseExpiry(inputs.exp.value);
    if (Number.isNaN(month)) {
      showErrors([{ field: "exp_month", message: "use MM/YY" }]);
      return;
    }
    submit.disabled = true;
    if (beforeSubmit && !(await beforeSubmit())) {
      submit.disabled = false;
      return;
    }
    status.textContent = "Checking your card…";
    const r = await api("POST", endpoint, { body: {
      number: inputs.number.value, exp_month: month, exp_year: year, cvc: inputs.cvc.value,
    } });
    submit.disabled = false;
    if (r.status === 201) {
      showErrors([]);
      inputs.number.value = "";
      inputs.cvc.value = "";
      status.textContent = `${r.data.brand} ending in ${r.data.last4} saved.`;
      if (onToken) onToken(r.data);
      return;
    }
    showErrors(r.data && Array.isArray(r.data.errors) ? r.data.errors : []);
    status.textContent = r.status === 422 ? "Check the card's details." : problemText(r);
  });
  container.append(form);
  return form;
}
