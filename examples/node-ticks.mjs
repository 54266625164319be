// Prints a symbol's ticks until Ctrl-C, across reconnects and restarts.
//   npm install ./clients/js ws
//   node examples/node-ticks.mjs ws://127.0.0.1:8080/ws AAPL [token]
import { TickgateClient } from 'tickgate-client';
import { WebSocket } from 'ws';

const [url = 'ws://127.0.0.1:8080/ws', symbol = 'AAPL', token] = process.argv.slice(2);
const c = new TickgateClient(url, { token, WebSocket, authHeader: true });
c.on('update', (u) => console.log(new Date(u.timestamp).toISOString(), u.symbol, u.seq, u.price));
c.on('state', (s) => console.error('--', s.state, s.delayMs !== undefined ? `(in ${s.delayMs} ms)` : ''));
await c.connect();
await c.subscribe([symbol]);
