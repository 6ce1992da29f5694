// openalgo-proxy web market watch: number formatting, shared by the page and its tests.
// Prices are shown with the decimals of the instrument's tick size (USDINR moves in 0.0025 steps: 4
// decimals), at least two, with Indian digit grouping like volumes (1,27,500.00).
"use strict";

const WatchFormat = (() => {
  const MIN_DECIMALS = 2;
  const MAX_DECIMALS = 6;
  // Until a tick size is known: exchanges whose instruments move in steps finer than a paisa.
  const EXCHANGE_DECIMALS = { CDS: 4, BCD: 4 };
  const grouped = new Map(); // decimals -> Intl.NumberFormat

  function formatter(decimals) {
    let found = grouped.get(decimals);
    if (!found) {
      found = new Intl.NumberFormat("en-IN", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
      grouped.set(decimals, found);
    }
    return found;
  }

  // Digits after the point in a number as it was meant (0.0025 -> 4, 0.05 -> 2, 1 -> 0), free of
  // binary noise.
  function decimalsOf(value) {
    const n = Math.abs(Number(value));
    if (!Number.isFinite(n)) return 0;
    const text = n.toFixed(MAX_DECIMALS).replace(/0+$/, "");
    const point = text.indexOf(".");
    return point < 0 ? 0 : text.length - point - 1;
  }

  // Decimals to show for an instrument: from its tick size when known, else from its exchange.
  function decimalsFor(tickSize, exchange) {
    if (tickSize > 0) return Math.max(MIN_DECIMALS, decimalsOf(tickSize));
    return Math.max(MIN_DECIMALS, EXCHANGE_DECIMALS[exchange] || 0);
  }

  // Without a tick size, decimals widen (never shrink) to fit every price seen.
  function widen(decimals, value) {
    return Math.max(decimals, Math.min(MAX_DECIMALS, decimalsOf(value)));
  }

  const isZeroAt = (value, decimals) => Math.abs(Number(value)) < 0.5 * 10 ** -decimals;

  function price(value, decimals = MIN_DECIMALS) {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "-";
    // never "-0.00"
    return formatter(decimals).format(isZeroAt(value, decimals) ? 0 : Number(value));
  }

  // A change: "+12.50", "-3.0025", "0.00" (no sign when it rounds to zero), with a suffix ("%").
  function signed(value, decimals = MIN_DECIMALS, suffix = "") {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "-";
    if (isZeroAt(value, decimals)) return `${formatter(decimals).format(0)}${suffix}`;
    return `${value > 0 ? "+" : ""}${formatter(decimals).format(Number(value))}${suffix}`;
  }

  const integer = (value) => (Number.isFinite(Number(value)) ? formatter(0).format(Number(value)) : "-");

  return { decimalsOf, decimalsFor, widen, price, signed, integer };
})();
