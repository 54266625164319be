/* Reconnect delays: exponential backoff with full jitter (AWS architecture
 * blog, "Exponential Backoff And Jitter"): attempt n waits a uniform random
 * time in [0, min(maxMs, initialMs * factor^n)). Full jitter spreads a crowd
 * of clients that lost the same node over the whole window instead of
 * letting them come back in waves. */
export const BACKOFF_DEFAULTS = Object.freeze({ initialMs: 500, maxMs: 30000, factor: 2 });

/** The ceiling of attempt n (0-based): min(maxMs, initialMs * factor^n). */
export function backoffCeiling(attempt, opts = BACKOFF_DEFAULTS) {
  const { initialMs, maxMs, factor } = { ...BACKOFF_DEFAULTS, ...opts };
  return Math.min(maxMs, initialMs * Math.pow(factor, Math.max(0, attempt)));
}

/** The delay of attempt n: random() in [0, 1) scaled to the ceiling. */
export function backoffDelay(attempt, opts = BACKOFF_DEFAULTS, random = Math.random) {
  return Math.floor(random() * backoffCeiling(attempt, opts));
}
