// Money is integer minor units plus an ISO 4217 code (shop.type.v1.Money).
import type { Money } from "./gen/shop/type/v1/money_pb.js";

const formatters = new Map<string, Intl.NumberFormat>();

function formatter(currency: string): Intl.NumberFormat {
  let f = formatters.get(currency);
  if (!f) {
    f = new Intl.NumberFormat(undefined, { style: "currency", currency });
    formatters.set(currency, f);
  }
  return f;
}

/** minorDigits is how many minor-unit digits the currency has (2 for EUR, 0 for JPY). */
export function minorDigits(currency: string): number {
  return formatter(currency).resolvedOptions().maximumFractionDigits ?? 2;
}

/** formatMoney renders an amount for people, e.g. "€89.99"; "–" when absent. */
export function formatMoney(m: Money | undefined): string {
  if (!m || !m.currencyCode) return "–";
  const scale = 10 ** minorDigits(m.currencyCode);
  return formatter(m.currencyCode).format(Number(m.amountMinor) / scale);
}

/** isZero reports whether m is absent or zero. */
export function isZero(m: Money | undefined): boolean {
  return !m || m.amountMinor === 0n;
}

/**
 * parseMajor turns what a person typed ("12", "12.5", "12.50") into minor
 * units; undefined for an empty input; an Error for anything else.
 */
export function parseMajor(input: string, currency: string): bigint | undefined | Error {
  const s = input.trim().replace(",", ".");
  if (s === "") return undefined;
  const digits = minorDigits(currency);
  const m = /^(\d{1,12})(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] ?? "").length > digits) {
    return new Error(`enter an amount like ${digits > 0 ? "12." + "5".padEnd(digits, "0") : "12"}`);
  }
  const frac = (m[2] ?? "").padEnd(digits, "0");
  return BigInt(m[1] + frac);
}
