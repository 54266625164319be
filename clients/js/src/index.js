/* tickgate-client: the JavaScript client of the tickgate market-data
 * gateway. Browser: global WebSocket, no dependency. Node: pass one, e.g.
 * new TickgateClient(url, { WebSocket: (await import('ws')).WebSocket }). */
export { TickgateClient } from './client.js';
export { TickgateError, SubscriptionError } from './errors.js';
export { backoffDelay, backoffCeiling, BACKOFF_DEFAULTS } from './backoff.js';
