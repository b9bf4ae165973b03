// An order as its buyer reads it: its state in words, whether it can still be cancelled or
// sent back, its refunds and its return, and its times. Shared by the orders page and the
// receipt.

const DECLINES = {
  card_declined: "card declined", insufficient_funds: "insufficient funds",
  expired_card: "card expired", invalid_payment_method: "card can't be used",
};

/** The state in words: paid, awaiting shipment, refunded, cancelled, declined (why)... */
export function stateWords(order) {
  switch (order.state) {
    case "reserved": return "Held, not paid yet";
    case "paying": return "Payment in progress";
    case "authorized": return "Awaiting shipment";
    case "paid": return "Paid, awaiting shipment";
    case "shipped": return `Shipped${order.carrier ? ` with ${order.carrier}` : ""}`;
    case "delivered": return "Delivered";
    case "refunded":
      return order.reason === "cancelled_by_brand" ? "Cancelled by the shop, refunded" : "Refunded";
    case "declined": return `Declined: ${DECLINES[order.reason] || "payment refused"}`;
    case "expired": return "Expired, not charged";
    case "cancelled": return "Cancelled";
    case "voided":
      return order.reason === "cancelled_by_buyer" ? "Cancelled by you"
        : order.reason === "cancelled_by_brand" ? "Cancelled by the shop" : "Cancelled";
    default: return order.state;
  }
}

/** Before it ships: a held order, or one whose payment is authorized, not captured. */
export function cancellable(order) {
  return order.state === "reserved" || order.state === "authorized";
}

export function when(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Cancels the order; answers the api() result (its data: the order as it stands). */
export function cancelOrder(api, id, csrf) {
  return api("POST", `/api/v1/me/orders/${encodeURIComponent(id)}/cancel`, { csrf });
}

/** Paid, shipped or delivered, and no return asked for yet. */
export function returnable(order) {
  return ["paid", "shipped", "delivered"].includes(order.state) && !order.return_state;
}

/** Part of it went back: "Refunded $12.00 of $50.00"; "" when none or all of it did. */
export function refundWords(order, money) {
  if (!order.refunded_minor || order.state === "refunded") return "";
  return `Refunded ${money(order.refunded_minor, order.currency)} of `
    + `${money(order.amount_minor, order.currency)}`;
}

const RETURN_WORDS = {
  requested: "Return requested: waiting for the shop",
  approved: "Return approved: refund on its way",
  rejected: "Return declined by the shop",
  refunded: "Return accepted and refunded",
};

export function returnWords(order) {
  return RETURN_WORDS[order.return_state] || "";
}

/** Asks to send the order back; answers the api() result (its data: the order). */
export function requestReturn(api, id, reason, csrf) {
  return api("POST", `/api/v1/me/orders/${encodeURIComponent(id)}/return`,
    { csrf, body: { reason } });
}

/** "UPS · tracking 1Z999", or "" before it ships. */
export function trackingWords(order) {
  if (!order.tracking) return "";
  return `${order.carrier} · tracking ${order.tracking}`;
}
