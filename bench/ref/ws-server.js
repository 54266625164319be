'use strict';
// ws-server.js - reference server on the `ws` library for bench/run.sh.
//   node ws-server.js [PORT]     (or env PORT; 0 = a free port)
//   env JWT_SECRET: verify `Authorization: Bearer <HS256 JWT>` on every
//   handshake (401 when invalid); SYMBOLS_FILE: tickgate's symbols file.
// Fan-out is done by hand: a Map symbol -> Set of sockets, one send per
// subscriber of the one price_update string.

const { WebSocketServer } = require('ws');
const common = require('./common');

const port = common.parsePort();
const topics = new Map(); // symbol -> Set<WebSocket>

const wss = new WebSocketServer({
  host: common.HOST,
  port,
  perMessageDeflate: false,
  maxPayload: common.MAX_PAYLOAD,
  clientTracking: false,
  verifyClient: (info, done) => {
    const who = common.authenticate(info.req.headers.authorization);
    if (!who) return done(false, 401, 'Unauthorized');
    info.req.identity = who;
    done(true);
  },
});

function publish(sym, text) {
  const subs = topics.get(sym);
  if (subs) for (const s of subs) s.send(text);
}

wss.on('connection', (socket, req) => {
  const mine = new Set();
  const transport = {
    send: (text) => socket.send(text),
    subscribe: (sym) => {
      let subs = topics.get(sym);
      if (!subs) topics.set(sym, (subs = new Set()));
      subs.add(socket);
      mine.add(sym);
    },
    unsubscribe: (sym) => {
      const subs = topics.get(sym);
      if (subs && subs.delete(socket) && subs.size === 0) topics.delete(sym);
      mine.delete(sym);
    },
    publish,
  };
  socket.on('message', (data, isBinary) => {
    if (isBinary) return socket.close(1003, 'text messages only');
    common.onMessage(data.toString('utf8'), transport);
  });
  socket.on('close', () => {
    for (const sym of mine) transport.unsubscribe(sym);
  });
  socket.on('error', () => {});
  socket.send(common.connectedMessage(req.identity));
});

wss.on('listening', () => common.listening(wss.address().port));
wss.on('error', (e) => {
  console.error(`ws-server: ${e.message}`);
  process.exit(1);
});
common.onSignals(() => wss.close());
