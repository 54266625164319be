'use strict';
// uws-server.js - reference server on uWebSockets.js (npm `uwebsockets`, a
// republish of the uWS.js v20 binaries) for bench/run.sh.
//   node uws-server.js [PORT]    (or env PORT; 0 = a free port)
//   env JWT_SECRET: verify `Authorization: Bearer <HS256 JWT>` on every
//   handshake, in the upgrade handler (401 when invalid); SYMBOLS_FILE:
//   tickgate's symbols file; TLS_CERT and TLS_KEY (PEM files): serve wss://
//   with uWS.SSLApp instead of App, same protocol subset.
// Fan-out uses uWS's native topics: ws.subscribe(symbol), app.publish().
//   env COMPRESSION=shared: permessage-deflate with uWS.SHARED_COMPRESSOR
//   (one compressor, no context takeover: app.publish compresses a message
//   once for every subscriber of its topic), every message sent compressed.

const uWS = require('uwebsockets');
const common = require('./common');

const port = common.parsePort();
const decoder = new TextDecoder('utf-8');

const tls = process.env.TLS_CERT || process.env.TLS_KEY;
if (tls && !(process.env.TLS_CERT && process.env.TLS_KEY)) {
  console.error('uws-server: TLS needs both TLS_CERT and TLS_KEY');
  process.exit(2);
}
const app = tls
  ? uWS.SSLApp({ cert_file_name: process.env.TLS_CERT, key_file_name: process.env.TLS_KEY })
  : uWS.App();
const compress = process.env.COMPRESSION === 'shared';

app.ws('/*', {
  compression: compress ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
  maxPayloadLength: common.MAX_PAYLOAD,
  idleTimeout: 0, // no server pings/timeouts, like the other two in the benchmark
  maxBackpressure: 64 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  sendPingsAutomatically: false,

  upgrade: (res, req, context) => {
    const who = common.authenticate(req.getHeader('authorization'));
    if (!who) {
      res.writeStatus('401 Unauthorized').writeHeader('Content-Type', 'application/json')
        .end('{"error":"unauthorized","message":"invalid credentials"}');
      return;
    }
    res.upgrade(
      { identity: who, transport: null },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },

  open: (ws) => {
    const data = ws.getUserData();
    data.transport = {
      send: (text) => ws.send(text, false, compress),
      subscribe: (sym) => ws.subscribe(sym),
      unsubscribe: (sym) => ws.unsubscribe(sym),
      publish: (sym, text) => app.publish(sym, text, false, compress),
    };
    ws.send(common.connectedMessage(data.identity), false, compress);
  },

  message: (ws, message, isBinary) => {
    if (isBinary) return ws.end(1003, 'text messages only');
    // message is only valid during this call: decode (copy) it now.
    common.onMessage(decoder.decode(message), ws.getUserData().transport);
  },

  close: () => {}, // uWS drops the socket's topic subscriptions itself
});

let listenSocket = null;
app.listen(common.HOST, port, (token) => {
  if (!token) {
    console.error(`uws-server: cannot listen on ${common.HOST}:${port}`);
    process.exit(1);
  }
  listenSocket = token;
  common.listening(uWS.us_socket_local_port(token));
});
common.onSignals(() => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
});
