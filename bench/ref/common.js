'use strict';
// common.js - what the two reference servers share: configuration, the HS256
// check done on every handshake, and the protocol subset of tickgate that the
// benchmark drives (connected, subscribe, unsubscribe, publish, heartbeat).
//
// Each server keeps only its transport: how a socket is subscribed to a
// symbol and how one price_update string reaches that symbol's subscribers.
// Message shapes and number formatting follow tickgate (src/pubsub/tick.c,
// src/gateway/protocol.c, lifecycle.c, msg_subscribe.c, msg_publish.c), so
// both sides send frames of the same size.

const crypto = require('crypto');
const fs = require('fs');

const HOST = '127.0.0.1';
const MAX_PAYLOAD = 64 * 1024;
const SUBSCRIBE_MAX_SYMBOLS = 100;
const PUBLISH_MAX_UPDATES = 1000;
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9.\-:\/_]{0,31}$/; // tickgate symbol_valid (SYMBOL_MAX 32)

function parsePort() {
  const arg = process.argv[2] !== undefined ? process.argv[2] : process.env.PORT;
  const port = arg === undefined || arg === '' ? 0 : Number(arg);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`usage: node ${process.argv[1]} [PORT]   (or env PORT; 0 = any free port)`);
    process.exit(2);
  }
  return port;
}

function listening(port) {
  // run.sh waits for exactly this line.
  process.stdout.write(`listening on ${HOST}:${port}\n`);
}

// ---- HS256 JWT, checked on every handshake when JWT_SECRET is set --------

const SECRET = process.env.JWT_SECRET ? Buffer.from(process.env.JWT_SECRET) : null;
const LEEWAY_S = 30;

function b64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

// Returns the identity {user_id, role} for an Authorization header value, or
// null when the request must be refused with 401. Without JWT_SECRET every
// request is anonymous (the header is ignored).
function authenticate(authorization) {
  if (!SECRET || !authorization) return { user_id: null, role: 'anonymous' };
  if (authorization.length <= 7 || authorization.slice(0, 7).toLowerCase() !== 'bearer ') return null;
  const token = authorization.slice(7).trim();
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (dot1 <= 0 || dot2 <= dot1 + 1 || token.indexOf('.', dot2 + 1) !== -1) return null;
  try {
    const hdr = b64urlJson(token.slice(0, dot1));
    if (!hdr || hdr.alg !== 'HS256') return null;
    const want = crypto.createHmac('sha256', SECRET).update(token.slice(0, dot2)).digest();
    const got = Buffer.from(token.slice(dot2 + 1), 'base64url');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
    const pl = b64urlJson(token.slice(dot1 + 1, dot2));
    const now = Math.floor(Date.now() / 1000);
    if (!pl || typeof pl.sub !== 'string' || !pl.sub || typeof pl.exp !== 'number') return null;
    if (now > pl.exp + LEEWAY_S) return null;
    if (typeof pl.nbf === 'number' && pl.nbf > now + LEEWAY_S) return null;
    if (typeof pl.iat === 'number' && pl.iat > now + LEEWAY_S) return null;
    if (pl.role !== undefined && typeof pl.role !== 'string') return null;
    return { user_id: pl.sub, role: pl.role || 'viewer' };
  } catch (e) {
    return null;
  }
}

// ---- symbols and price_update formatting ----------------------------------

// symbol -> {first, seq, volume}. SYMBOLS_FILE (the file given to tickgate,
// lines "SYMBOL" or "SYMBOL,start_price") seeds first prices as tickgate does;
// without it any valid symbol is accepted and its first tick sets the base.
const symbols = new Map();
(function loadSymbols() {
  const f = process.env.SYMBOLS_FILE;
  if (!f) return;
  for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
    const t = line.trim();
    if (!t || t[0] === '#') continue;
    const [name, price] = t.split(',');
    const p = price === undefined ? 0 : Number(price);
    symbols.set(name.trim(), { first: p > 0 ? p : 0, seq: 0, volume: 0 });
  }
})();

function symbolState(name) {
  let s = symbols.get(name);
  if (!s) {
    s = { first: 0, seq: 0, volume: 0 };
    symbols.set(name, s);
  }
  return s;
}

// tickgate's fmt_double: at most `decimals` decimals, trailing zeros trimmed,
// no "-0", non-finite as 0.
const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];
function fmt(v, decimals) {
  if (!Number.isFinite(v)) return '0';
  const r = Math.round(Math.abs(v) * POW10[decimals]) / POW10[decimals];
  if (r === 0) return '0';
  return (v < 0 ? '-' : '') + String(r);
}

function isNum(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

function validTick(u) {
  if (!u || typeof u !== 'object' || Array.isArray(u)) return 'each update must be an object';
  if (typeof u.symbol !== 'string' || !SYMBOL_RE.test(u.symbol)) return 'update.symbol must be a valid symbol';
  if (!isNum(u.price) || !(u.price > 0) || u.price > 1e12) return 'update.price must be a positive number';
  for (const k of ['bid', 'ask', 'volume'])
    if (u[k] !== undefined && (!isNum(u[k]) || u[k] < 0))
      return 'update.bid, ask and volume must be non-negative numbers';
  if (u.timestamp !== undefined && (!isNum(u.timestamp) || u.timestamp < 0 || u.timestamp > 1e14))
    return 'update.timestamp must be milliseconds since the epoch';
  return null;
}

// Sequences one tick and returns its price_update text (built once, sent to
// every subscriber as is).
function priceUpdate(u) {
  const s = symbolState(u.symbol);
  if (!(s.first > 0)) s.first = u.price;
  if (u.volume !== undefined) s.volume = u.volume;
  s.seq++;
  const change = u.price - s.first;
  const pct = s.first > 0 ? (change / s.first) * 100 : 0;
  const ts = u.timestamp !== undefined && u.timestamp > 0 ? Math.trunc(u.timestamp) : Date.now();
  return (
    '{"type":"price_update","symbol":"' + u.symbol +
    '","price":' + fmt(u.price, 6) +
    ',"bid":' + fmt(u.bid !== undefined ? u.bid : u.price, 6) +
    ',"ask":' + fmt(u.ask !== undefined ? u.ask : u.price, 6) +
    ',"volume":' + fmt(s.volume, 4) +
    ',"change":' + fmt(change, 6) +
    ',"change_percent":' + fmt(pct, 4) +
    ',"timestamp":' + ts +
    ',"seq":' + s.seq + '}'
  );
}

// ---- the protocol ----------------------------------------------------------

let nextClient = 0;
// Only echoed in `connected` (these servers never ping), so that its size
// matches tickgate's when run.sh gives both the same value.
const HEARTBEAT_INTERVAL_S = Number(process.env.HEARTBEAT_INTERVAL_S) || 30;

function connectedMessage(identity) {
  nextClient++;
  return JSON.stringify({
    type: 'connected',
    client_id: 'c-' + nextClient.toString(16),
    user_id: identity.user_id,
    role: identity.role,
    heartbeat_interval_s: HEARTBEAT_INTERVAL_S,
    limits: { max_subscriptions: 100, max_messages_per_minute: 100000000, max_message_bytes: MAX_PAYLOAD },
  });
}

function withId(o, id) {
  if (id !== undefined) o.id = id;
  return JSON.stringify(o);
}

function error(code, message, id) {
  return withId({ type: 'error', code, message }, id);
}

function symbolList(msg) {
  const s = msg.symbols;
  if (!Array.isArray(s) || s.length > SUBSCRIBE_MAX_SYMBOLS) return null;
  for (const x of s) if (typeof x !== 'string') return null;
  return s;
}

// Handles one client text message. transport = {send(text), subscribe(sym),
// unsubscribe(sym), publish(sym, text)}; publish must deliver text to every
// socket subscribed to sym.
function onMessage(text, transport) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    transport.send(error('invalid_json', 'message is not valid JSON'));
    return;
  }
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
    transport.send(error('invalid_message', 'message must be a JSON object'));
    return;
  }
  const id = msg.id;
  switch (msg.type) {
    case 'subscribe': {
      const syms = symbolList(msg);
      if (!syms) return transport.send(error('invalid_message', 'subscribe needs symbols: [string]', id));
      const ok = [];
      const bad = [];
      for (const s of syms) {
        if (!SYMBOL_RE.test(s)) bad.push(s);
        else if (!ok.includes(s)) ok.push(s);
      }
      if (ok.length > 0 || bad.length === 0) transport.send(withId({ type: 'subscription_confirmed', symbols: ok }, id));
      if (bad.length) transport.send(withId({ type: 'subscription_failed', symbols: bad, reason: 'invalid_symbol' }, id));
      for (const s of ok) transport.subscribe(s);
      return;
    }
    case 'unsubscribe': {
      const syms = symbolList(msg);
      if (!syms)
        return transport.send(error('invalid_message', 'unsubscribe needs symbols: [string] (at most 100)', id));
      for (const s of syms) transport.unsubscribe(s);
      return transport.send(withId({ type: 'unsubscription_confirmed', symbols: syms }, id));
    }
    case 'publish': {
      const ups = msg.updates;
      if (!Array.isArray(ups)) return transport.send(error('invalid_message', 'updates must be an array of ticks', id));
      if (ups.length > PUBLISH_MAX_UPDATES)
        return transport.send(error('invalid_message', 'at most 1000 updates per publish', id));
      for (const u of ups) {
        const why = validTick(u);
        if (why) return transport.send(error('invalid_message', why, id));
      }
      for (const u of ups) transport.publish(u.symbol, priceUpdate(u));
      return transport.send(withId({ type: 'published', count: ups.length }, id));
    }
    case 'heartbeat':
      return transport.send(withId({ type: 'heartbeat_ack', server_time: Date.now() }, id));
    default:
      if (typeof msg.type !== 'string') return transport.send(error('invalid_message', "missing string field 'type'", id));
      return transport.send(error('unknown_type', 'unknown message type', id));
  }
}

function onSignals(stop) {
  for (const sig of ['SIGTERM', 'SIGINT'])
    process.on(sig, () => {
      process.stderr.write(`${require('path').basename(process.argv[1])}: ${sig}, exiting\n`);
      stop();
      process.exit(0);
    });
}

module.exports = {
  HOST, MAX_PAYLOAD, parsePort, listening, authenticate, connectedMessage, onMessage, onSignals,
  // for tests
  fmt, priceUpdate,
};
