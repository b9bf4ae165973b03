// An order as its buyer reads it: its state in words, whether it can still be cancelled,
// and its times. Shared by the orders page and the receipt.

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
    case "paid": return "Paid";
    case "refunded": return "Refunded";
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
