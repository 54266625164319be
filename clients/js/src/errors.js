/* Typed errors. Every rejection and every "error" event of the client is a
 * TickgateError; `code` says what happened:
 *   a server error code (invalid_message, forbidden, rate_limited,
 *   auth_failed, …), subscription_failed (SubscriptionError),
 *   trade_rejected (with `reason`), timeout, disconnected, closed,
 *   queue_full. */
export class TickgateError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'TickgateError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/* A subscribe where at least one symbol failed. `reason` and `symbols` are
 * those of the first failure (the server sends them in the order
 * invalid_symbol, unknown_symbol, limit_exceeded, not_entitled); `failures`
 * lists every {reason, symbols}; `confirmed` is the subscription_confirmed
 * of the symbols that were accepted (they stay subscribed), or null. */
export class SubscriptionError extends TickgateError {
  constructor(failures, confirmed) {
    const first = failures[0];
    super('subscription_failed', first.reason + ': ' + first.symbols.join(', '),
      { reason: first.reason, symbols: first.symbols, failures, confirmed: confirmed || null });
    this.name = 'SubscriptionError';
  }
}
