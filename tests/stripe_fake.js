// A stand-in for Stripe.js v3 (https://js.stripe.com/v3/), served by tests/stripe_fake.py,
// with the part of its documented interface livecart's card form uses:
//   const stripe = Stripe(publishableKey);
//   const card = stripe.elements().create("card", options); card.mount(element);
//   card.on("change", handler); card.clear();
//   stripe.confirmCardSetup(clientSecret, {payment_method: {card}})
//     -> Promise<{setupIntent} | {error: {type, code, decline_code, message}}>
// Like Stripe.js it sends the card from the page straight to the API (a form-encoded POST
// with the publishable key as `key`, a CORS "simple" request), never to the merchant.
// Unlike Stripe's, its fields are plain inputs in the page, not a frame from Stripe.
(function () {
  const API = new URL(document.currentScript.src).origin;

  function field(label, placeholder) {
    const input = document.createElement("input");
    input.setAttribute("aria-label", label);
    input.placeholder = placeholder;
    input.inputMode = "numeric";
    input.autocomplete = "off";
    return input;
  }

  function CardElement() {
    this.number = field("Credit or debit card number", "Card number");
    this.expiry = field("Credit or debit card expiration date", "MM / YY");
    this.cvc = field("Credit or debit card CVC", "CVC");
    this.handlers = [];
  }
  CardElement.prototype.mount = function (target) {
    const node = typeof target === "string" ? document.querySelector(target) : target;
    const box = document.createElement("div");
    box.className = "StripeElement";
    box.append(this.number, this.expiry, this.cvc);
    node.append(box);
    for (const input of [this.number, this.expiry, this.cvc]) {
      input.addEventListener("input", () => this.handlers.forEach((h) => h({ elementType: "card", error: undefined })));
    }
  };
  CardElement.prototype.on = function (event, handler) {
    if (event === "change") this.handlers.push(handler);
  };
  CardElement.prototype.clear = function () {
    this.number.value = this.expiry.value = this.cvc.value = "";
  };

  function Stripe(key) {
    return {
      elements() {
        return { create: (type) => new CardElement(type) };
      },
      async confirmCardSetup(clientSecret, data) {
        const card = data.payment_method.card;
        const [month, year] = card.expiry.value.split("/").map((part) => part.trim());
        const body = new URLSearchParams({
          key, client_secret: clientSecret, "payment_method_data[type]": "card",
          "payment_method_data[card][number]": card.number.value.replace(/\s/g, ""),
          "payment_method_data[card][exp_month]": month || "",
          "payment_method_data[card][exp_year]": year || "",
          "payment_method_data[card][cvc]": card.cvc.value,
        });
        const id = clientSecret.split("_secret_")[0];
        const response = await fetch(`${API}/v1/setup_intents/${id}/confirm`, { method: "POST", body });
        const answer = await response.json();
        return response.ok ? { setupIntent: answer } : { error: answer.error };
      },
    };
  }
  window.Stripe = Stripe;
})();
