// Commission rates and prices as people type them, and back: percent <-> basis points,
// "12.50" <-> 1250 minor units. Integer arithmetic on the digits, never a float sum.

/** The currency's minor digits (2 for USD, 0 for JPY, 3 for KWD). */
export function minorDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch (error) {
    return 2;
  }
}

/** "12.5" -> 1250 (USD); null for an empty or malformed amount. */
export function toMinor(text, currency) {
  const digits = minorDigits(currency);
  const match = /^\s*(\d{1,10})(?:[.,](\d*))?\s*$/.exec(text);
  if (!match || (match[2] || "").length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || 0);
}

/** 1250 -> "12.50" (USD): the value an amount input shows. */
export function fromMinor(minor, currency) {
  const digits = minorDigits(currency);
  if (!digits) return String(minor);
  const whole = Math.floor(minor / 10 ** digits);
  return `${whole}.${String(minor % 10 ** digits).padStart(digits, "0")}`;
}

/** "12.5" -> 1250 basis points; null for an empty or malformed rate. */
export function toBps(text) {
  const match = /^\s*(\d{1,2})(?:[.,](\d{0,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
}

/** 1250 -> "12.5" (a rate as people say it). */
export function percent(bps) {
  return String(bps / 100);
}
