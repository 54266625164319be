/* Unit tests of the client's logic with a fake socket (this file only; the
 * integration tests use a real tickgate): backoff and jitter, dedupe by
 * seq, recovery bookkeeping, request timeouts, error typing, reconnect
 * advisories, token refresh, bounded queues, offline/online. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { TickgateClient, TickgateError, SubscriptionError, backoffDelay, backoffCeiling } from '../src/index.js';

/* A stand-in for a WebSocket: the test plays the server. */
class FakeWS {
  static all = [];
  constructor(url, protocols, opts) {
    this.url = new URL(url);
    this.opts = opts;
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    FakeWS.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.readyState = 3; this.closed = { code, reason }; }
  /* server side */
  accept(extra) {
    this.readyState = 1;
    this.push({ type: 'connected', client_id: 'c-1', user_id: null, role: 'anonymous', ...extra });
  }
  push(msg) { this.onmessage && this.onmessage({ data: JSON.stringify(msg) }); }
  drop(code = 1006, reason = '') { this.readyState = 3; this.onclose && this.onclose({ code, reason }); }
  last(type) { return [...this.sent].reverse().find((m) => m.type === type); }
}

const last = () => FakeWS.all[FakeWS.all.length - 1];
const next = (c, event, pred = () => true) => new Promise((resolve) => {
  const f = (v) => { if (pred(v)) { c.off(event, f); resolve(v); } };
  c.on(event, f);
});
const tick = () => new Promise((r) => setTimeout(r, 0));

function client(opts = {}) {
  return new TickgateClient('ws://gw.test/ws', {
    WebSocket: FakeWS, heartbeatMs: 0, random: () => 0, backoff: { initialMs: 10, maxMs: 80 }, window: null, ...opts
  });
}

async function connected(opts) {
  const c = client(opts);
  const p = c.connect();
  await tick();
  last().accept();
  await p;
  return c;
}

/* Subscribes sym on the current fake socket and confirms it under epoch. */
async function subscribed(c, sym = 'AAPL', epoch = 'E1') {
  const p = c.subscribe([sym]);
  const req = last().last('subscribe');
  last().push({ type: 'subscription_confirmed', symbols: [sym], epochs: { [sym]: epoch }, id: req.id });
  return p;
}

const upd = (seq, extra) => ({ type: 'price_update', symbol: 'AAPL', price: 1, seq, ...extra });

test('backoff: ceiling doubles up to maxMs, delay is full jitter in [0, ceiling)', () => {
  const o = { initialMs: 100, maxMs: 1000, factor: 2 };
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffCeiling(n, o)), [100, 200, 400, 800, 1000, 1000]);
  for (let n = 0; n < 12; n++) {
    assert.equal(backoffDelay(n, o, () => 0), 0);
    const hi = backoffDelay(n, o, () => 0.999999);
    assert.ok(hi < backoffCeiling(n, o) && hi >= backoffCeiling(n, o) - 1, String(hi));
  }
  const seq = [0.25, 0.5, 0.75];
  assert.deepEqual(seq.map((r) => backoffDelay(3, o, () => r)), [200, 400, 600]);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(20, o);
    assert.ok(d >= 0 && d < 1000, String(d));
  }
});

test('reconnect delays follow the injected random and grow until connected', async () => {
  const c = await connected({ random: () => 0.5, backoff: { initialMs: 40, maxMs: 1000 } });
  const delays = [];
  c.on('state', (s) => { if (s.state === 'reconnecting') delays.push(s.delayMs); });
  last().drop(1006);
  await next(c, 'state', (s) => s.state === 'connecting');
  last().drop(1006);          /* the attempt fails before `connected` */
  await next(c, 'state', (s) => s.state === 'connecting');
  last().accept();
  last().drop(1006);          /* connected again: back to the first delay */
  assert.deepEqual(delays, [20, 40, 20]);
  c.close();
});

test('dedupe by seq: duplicates dropped, gaps reported, snapshot resets', async () => {
  const c = await connected();
  await subscribed(c);
  const seen = [];
  const gaps = [];
  c.on('update', (u) => seen.push(u.seq));
  c.on('gap', (g) => gaps.push(g));
  const ws = last();
  ws.push(upd(5, { snapshot: true }));
  for (const s of [6, 7, 7, 6, 8]) ws.push(upd(s));
  ws.push({ type: 'price_batch', updates: [upd(8), upd(9), upd(11)] });
  ws.push(upd(2, { snapshot: true }));   /* a resync: accepted, position reset */
  ws.push(upd(3));
  assert.deepEqual(seen, [5, 6, 7, 8, 9, 11, 2, 3]);
  assert.equal(c.stats.duplicates, 3);
  assert.deepEqual(gaps, [{ symbol: 'AAPL', from: 10, to: 10 }]);
  ws.push({ ...upd(4), symbol: 'MSFT' });  /* not subscribed: dropped */
  assert.deepEqual(seen.length, 8);
  c.close();
});

test('reconnect resubscribes with recover from the last seq and epoch; replay overlap deduped', async () => {
  const c = await connected();
  await subscribed(c);
  const seen = [];
  c.on('update', (u) => seen.push(u.seq));
  last().push(upd(1));
  last().push(upd(2));
  last().drop(1006);
  await next(c, 'state', (s) => s.state === 'connecting');
  const recovered = next(c, 'recovered');
  last().accept();
  const sub = last().last('subscribe');
  assert.deepEqual(sub.recover, { AAPL: { seq: 2, epoch: 'E1' } });
  last().push({ type: 'subscription_confirmed', symbols: ['AAPL'], epochs: { AAPL: 'E1' }, recovered: { AAPL: true }, id: sub.id });
  assert.deepEqual(await recovered, { recovered: ['AAPL'], missed: [], epochs: { AAPL: 'E1' } });
  for (const s of [2, 3, 4]) last().push(upd(s));
  assert.deepEqual(seen, [1, 2, 3, 4]);

  /* Next time the epoch changed: recovered:false, the snapshot restarts it. */
  last().drop(1006);
  await next(c, 'state', (s) => s.state === 'connecting');
  last().accept();
  const sub2 = last().last('subscribe');
  assert.deepEqual(sub2.recover, { AAPL: { seq: 4, epoch: 'E1' } });
  last().push({ type: 'subscription_confirmed', symbols: ['AAPL'], epochs: { AAPL: 'E2' }, recovered: { AAPL: false }, id: sub2.id });
  assert.equal(c.subscriptions.get('AAPL').seq, null);
  last().push(upd(1)); /* a new epoch starts at 1: not a duplicate */
  assert.deepEqual(seen, [1, 2, 3, 4, 1]);
  assert.deepEqual([c.stats.recovered, c.stats.missed], [1, 1]);
  c.close();
});

test('request timeout rejects with code timeout and forgets the request', async () => {
  const c = await connected();
  const t0 = Date.now();
  await assert.rejects(c.getHistory('AAPL', 5, { timeoutMs: 30 }), (e) => {
    assert.ok(e instanceof TickgateError);
    assert.equal(e.code, 'timeout');
    assert.equal(e.request.type, 'get_history');
    return true;
  });
  assert.ok(Date.now() - t0 >= 25);
  assert.equal(c._pending.size, 0);
  const h = c.getHistory('AAPL', 1);
  const id = last().last('get_history').id;
  last().push({ type: 'history', symbol: 'AAPL', updates: [], id: id - 1 }); /* the late reply: ignored */
  last().push({ type: 'history', symbol: 'AAPL', updates: [upd(1)], id });
  assert.equal((await h).updates[0].seq, 1);
  c.close();
});

test('errors are typed: server error, subscription failures, trade rejection', async () => {
  const c = await connected();
  const ws = last();
  const a = c.analysis('ZZZZ', 60);
  ws.push({ type: 'error', code: 'invalid_message', message: 'unknown symbol', id: ws.last('analysis').id });
  await assert.rejects(a, { name: 'TickgateError', code: 'invalid_message', message: 'unknown symbol' });

  const s = c.subscribe(['AAPL', 'NOPE', 'aapl', 'AAPL']);
  const id = ws.last('subscribe').id;
  assert.deepEqual(ws.last('subscribe').symbols, ['AAPL', 'NOPE', 'aapl']);
  ws.push({ type: 'subscription_confirmed', symbols: ['AAPL'], epochs: { AAPL: 'E' }, id });
  ws.push({ type: 'subscription_failed', symbols: ['aapl'], reason: 'invalid_symbol', id });
  ws.push({ type: 'subscription_failed', symbols: ['NOPE'], reason: 'unknown_symbol', id });
  await assert.rejects(s, (e) => {
    assert.ok(e instanceof SubscriptionError && e instanceof TickgateError);
    assert.equal(e.code, 'subscription_failed');
    assert.equal(e.reason, 'invalid_symbol');
    assert.deepEqual(e.symbols, ['aapl']);
    assert.deepEqual(e.failures.map((f) => f.reason), ['invalid_symbol', 'unknown_symbol']);
    assert.deepEqual(e.confirmed.symbols, ['AAPL']);
    return true;
  });
  assert.deepEqual([...c.subscriptions.keys()], ['AAPL']); /* the confirmed one stays */

  const t = c.trade({ symbol: 'AAPL', side: 'sell', quantity: 1, order_type: 'market' });
  ws.push({ type: 'trade_rejected', reason: 'insufficient_position', id: ws.last('trade').id });
  await assert.rejects(t, { code: 'trade_rejected', reason: 'insufficient_position' });

  const errors = [];
  c.on('error', (e) => errors.push(e));
  ws.push({ type: 'error', code: 'rate_limited', message: 'too many messages; slow down' });
  assert.equal(errors[0].code, 'rate_limited');
  c.close();
});

test('a lost connection retries idempotent requests and rejects a trade', async () => {
  const c = await connected();
  const h = c.getHistory('AAPL', 2);
  const t = c.trade({ symbol: 'AAPL', side: 'buy', quantity: 1, order_type: 'market' });
  last().drop(1006);
  await assert.rejects(t, { code: 'disconnected' });
  await next(c, 'state', (s) => s.state === 'connecting');
  last().accept();
  const again = last().last('get_history');
  assert.ok(again, 'get_history sent again');
  assert.equal(last().last('trade'), undefined);
  last().push({ type: 'history', symbol: 'AAPL', updates: [], id: again.id });
  assert.equal((await h).type, 'history');
  c.close();
});

test('bounded queue: requests beyond maxQueue while disconnected are refused', async () => {
  const c = client({ maxQueue: 2 });
  const a = c.heartbeat({ timeoutMs: 1000 });
  const b = c.heartbeat({ timeoutMs: 1000 });
  await assert.rejects(c.heartbeat(), { code: 'queue_full' });
  c.connect().catch(() => {});
  await tick();
  last().accept();
  const sent = last().sent.filter((m) => m.type === 'heartbeat');
  assert.equal(sent.length, 2);
  for (const m of sent) last().push({ type: 'heartbeat_ack', server_time: 1, id: m.id });
  assert.equal((await a).type, 'heartbeat_ack');
  await b;
  c.close();
  await assert.rejects(c.heartbeat(), { code: 'closed' });
});

test('reconnect advisory: the socket is left after after_ms and reopened at once', async () => {
  const c = await connected({ random: () => 0.99, backoff: { initialMs: 5000 } });
  const before = FakeWS.all.length;
  const t0 = Date.now();
  last().push({ type: 'reconnect', after_ms: 40 });
  const s = await next(c, 'state', (x) => x.state === 'reconnecting');
  assert.equal(s.delayMs, 0);
  assert.ok(Date.now() - t0 >= 35);
  await next(c, 'state', (x) => x.state === 'connecting');
  assert.equal(FakeWS.all.length, before + 1);
  c.close();
});

test('server close 1001 after an advisory waits out the advised time', async () => {
  const c = await connected({ random: () => 0.99, backoff: { initialMs: 5000 } });
  last().push({ type: 'reconnect', after_ms: 300 });
  const s = next(c, 'state', (x) => x.state === 'reconnecting');
  last().drop(1001, 'server draining');
  const { delayMs } = await s;
  assert.ok(delayMs > 200 && delayMs <= 300, String(delayMs));
  c.close();
});

test('tokens: getToken before each reconnect and on token_expiring; header or query', async () => {
  let n = 0;
  const c = await connected({ token: 't0', getToken: async () => 't' + ++n });
  assert.equal(FakeWS.all[FakeWS.all.length - 1].url.searchParams.get('token'), 't0');
  last().push({ type: 'token_expiring', expires_at: Date.now() + 20000 });
  await tick();
  const auth = last().last('authenticate');
  assert.equal(auth.token, 't1');
  last().push({ type: 'authenticated', user_id: 'u', role: 'viewer', id: auth.id });
  last().drop(1006);
  await next(c, 'state', (s) => s.state === 'connecting');
  await tick();
  assert.equal(last().url.searchParams.get('token'), 't2');
  c.close();

  const h = client({ apiKey: 'k1', authHeader: true });
  h.connect().catch(() => {});
  await tick();
  assert.equal(last().url.search, '');
  assert.deepEqual(last().opts.headers, { 'X-API-Key': 'k1' });
  h.close();
});

test('fatal close codes end the client; connect() rejects', async () => {
  const c = client();
  const p = c.connect();
  await tick();
  last().drop(1008, 'IP blocked');
  await assert.rejects(p, { code: 'closed', closeCode: 1008 });
  assert.equal(c.state, 'closed');
});

test('browser offline drops the socket and waits; online reconnects at once', async () => {
  const win = new EventEmitter();
  win.addEventListener = win.on;
  win.removeEventListener = win.off;
  win.navigator = { onLine: true };
  const c = await connected({ window: win, backoff: { initialMs: 60000 }, random: () => 0.99 });
  const before = FakeWS.all.length;
  win.emit('offline');
  assert.equal(c.state, 'offline');
  win.emit('online');
  assert.equal(c.state, 'connecting');
  await tick();
  assert.equal(FakeWS.all.length, before + 1);
  c.close();
  assert.equal(win.listenerCount('online'), 0);
});

test('connect timeout and heartbeat timeout drop a silent socket', async () => {
  const c = client({ connectTimeoutMs: 20 });
  c.connect().catch(() => {}); /* rejected by close() below */
  await tick();
  const first = last();
  await next(c, 'close', (e) => e.reason === 'connect timeout');
  assert.ok(first.closed);
  c.close();

  const h = await connected({ heartbeatMs: 20 });
  await next(h, 'close', (e) => e.reason === 'heartbeat timeout');
  assert.ok(FakeWS.all.some((w) => w.sent.some((m) => m.type === 'heartbeat')));
  h.close();
});

test('initial subscriptions (another client\'s positions) are subscribed with recover on connect', async () => {
  const c = client({ subscriptions: [['AAPL', { seq: 7, epoch: 'E1' }], 'MSFT'] });
  const sent = [];
  c.on('sent', (m) => sent.push(m.type));
  c.connect().catch(() => {});
  await tick();
  last().accept();
  const sub = last().last('subscribe');
  assert.deepEqual(sub.symbols, ['AAPL', 'MSFT']);
  assert.deepEqual(sub.recover, { AAPL: { seq: 7, epoch: 'E1' } });
  assert.deepEqual(sent, ['subscribe']);
  const failed = next(c, 'error');
  last().push({ type: 'subscription_confirmed', symbols: ['AAPL'], epochs: { AAPL: 'E1' }, recovered: { AAPL: true }, id: sub.id });
  last().push({ type: 'subscription_failed', symbols: ['MSFT'], reason: 'limit_exceeded', id: sub.id });
  const e = await failed;
  assert.ok(e instanceof SubscriptionError);
  assert.deepEqual([e.reason, e.symbols], ['limit_exceeded', ['MSFT']]);
  assert.deepEqual([...c.subscriptions.keys()], ['AAPL']);
  c.close();
});
