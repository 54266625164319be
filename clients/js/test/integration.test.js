/* The client against a real tickgate (and a real redis-server): subscribe
 * and updates, typed errors, request/response, reconnect after the node is
 * killed and restarted, and recovery with no gap and no duplicate while a
 * publisher keeps publishing through Redis. Ticks come only from the tests
 * (simulator off). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { TickgateClient, SubscriptionError, TickgateError } from '../src/index.js';
import { balancer, cleanup, mint, next, ready, redis, tickgate } from './harness.js';

after(cleanup);

const FAST = { WebSocket, backoff: { initialMs: 50, maxMs: 500 }, heartbeatMs: 0 };

function open(url, opts = {}) {
  const c = new TickgateClient(url, { ...FAST, ...opts });
  return c;
}

/* Publishes n ticks of sym through client pub, awaiting each ack. */
async function publish(pub, sym, n, base = 100) {
  for (let i = 0; i < n; i++) await pub.publish([{ symbol: sym, price: base + (i % 50) / 100 }]);
}

/* Redis, nodes A and B on it (both ready), a balancer passing to A, a
 * client c through it and a publisher pub on B. */
async function twoNodes(extra) {
  const rs = await redis();
  const flags = ['--redis.url=' + rs.url, ...extra];
  const [a, b] = [await tickgate(flags), await tickgate(flags)];
  await ready(a);
  await ready(b);
  const lb = await balancer();
  lb.backend = a.port;
  return { rs, flags, a, b, lb, c: open(lb.url), pub: open(b.url, { token: mint('feed', 'publisher') }) };
}

test('subscribe, updates, request/response and typed errors', async () => {
  const gw = await tickgate();
  const c = open(gw.url, { token: mint('vera', 'viewer', { symbols: ['AAPL', 'MSFT', 'TSLA'] }), authHeader: true });
  const pub = open(gw.url, { token: mint('feed', 'publisher') });
  try {
    const hello = await c.connect();
    assert.equal(hello.role, 'viewer');
    await pub.connect();
    const seqs = [];
    c.on('update', (u) => { if (u.symbol === 'AAPL' && !u.snapshot) seqs.push(u.seq); });
    const conf = await c.subscribe(['AAPL']);
    assert.deepEqual(conf.symbols, ['AAPL']);
    assert.equal(typeof conf.epochs.AAPL, 'string');
    const got5 = next(c, 'update', (u) => u.seq === 5);
    await publish(pub, 'AAPL', 5);
    await got5;
    assert.deepEqual(seqs, [1, 2, 3, 4, 5]);

    const hist = await c.getHistory('AAPL', 3);
    assert.deepEqual(hist.updates.map((u) => u.seq), [3, 4, 5]);

    /* One symbol of each failure reason; the accepted one stays. */
    const err = await c.subscribe(['MSFT', 'NOPE', 'GOOGL']).catch((e) => e);
    assert.ok(err instanceof SubscriptionError, String(err));
    assert.deepEqual(err.failures, [{ reason: 'unknown_symbol', symbols: ['NOPE'] },
      { reason: 'not_entitled', symbols: ['GOOGL'] }]);
    assert.equal(err.reason, 'unknown_symbol');
    assert.deepEqual(err.confirmed.symbols, ['MSFT']);
    assert.deepEqual([...c.subscriptions.keys()].sort(), ['AAPL', 'MSFT']);

    const anon = open(gw.url);
    await anon.connect();
    const lim = await anon.subscribe(['AAPL', 'MSFT', 'TSLA', 'AMZN']).catch((e) => e);
    assert.equal(lim.reason, 'limit_exceeded');
    assert.deepEqual(lim.symbols, ['AMZN']);
    const forbidden = await anon.getHistory('AAPL').catch((e) => e);
    assert.ok(forbidden instanceof TickgateError);
    assert.equal(forbidden.code, 'forbidden');
    const bad = await c.analysis('AAPL').catch((e) => e);
    assert.equal(bad.code, 'forbidden');
    const badHist = await c.getHistory('AAPL', 5000).catch((e) => e);
    assert.equal(badHist.code, 'invalid_message');
    anon.close();

    await c.unsubscribe(['MSFT']);
    assert.deepEqual([...c.subscriptions.keys()], ['AAPL']);
  } finally {
    c.close();
    pub.close();
    assert.equal(await gw.stop(), 0);
  }
});

test('node killed and restarted without Redis: reconnects, new epoch, snapshot then live', async () => {
  let gw = await tickgate();
  const port = gw.port;
  const c = open(gw.url);
  const states = [];
  c.on('state', (s) => states.push(s.state));
  try {
    await c.connect();
    await c.subscribe(['AAPL']);
    const epoch1 = c.subscriptions.get('AAPL').epoch;
    const reconnecting = next(c, 'state', (s) => s.state === 'reconnecting');
    await gw.kill();
    await reconnecting;
    const missed = next(c, 'recovered');
    gw = await tickgate([], { port });
    const r = await missed;
    assert.deepEqual(r.missed, ['AAPL']);
    assert.notEqual(r.epochs.AAPL, epoch1);
    const pub = open(gw.url, { token: mint('feed', 'publisher') });
    await pub.connect();
    const live = next(c, 'update', (u) => u.seq === 1 && !u.snapshot);
    await publish(pub, 'AAPL', 1);
    await live;
    pub.close();
    assert.ok(states.includes('reconnecting') && states[states.length - 1] === 'connected', states.join(' '));
  } finally {
    c.close();
    assert.equal(await gw.stop(), 0);
  }
});

test('node killed under a steady publisher, restarted on Redis: every seq exactly once', async () => {
  const { rs, flags, a: first, b, lb, c, pub } = await twoNodes([]);
  let a = first;             /* restarted below */
  const SYM = 'NVDA';
  const watch = open(b.url);   /* the live seq, seen on the node that stays */
  let running = true;
  try {
    await c.connect();
    await pub.connect();
    await watch.connect();
    await c.subscribe([SYM]);
    await watch.subscribe([SYM]);
    const seen = [];
    c.on('update', (u) => { if (u.symbol === SYM && !u.snapshot) seen.push(u.seq); });
    let live = 0;
    watch.on('update', (u) => { if (u.symbol === SYM) live = u.seq; });
    /* The restarted node replays at most feed.history_size (1000) ticks: the
     * publisher pauses if the gap nears that, whatever the restart takes,
     * and goes on once the client has recovered. */
    let paused = null;
    let resume = () => {};
    const publishing = (async () => {
      for (let i = 0; running; i++) {
        if (paused) await paused;
        await pub.publish([{ symbol: SYM, price: 100 + (i % 50) / 100 }]);
      }
    })();
    /* If an assertion below fails, finally's pub.close() rejects the publish
     * in flight: that must not hide the assertion as an unhandled rejection. */
    publishing.catch(() => {});
    await next(c, 'update', (u) => u.seq >= 20);

    const down = next(c, 'state', (s) => s.state === 'reconnecting');
    lb.backend = 0;
    await a.kill();
    await down;
    const lastBefore = seen[seen.length - 1];
    const cap = (u) => {
      if (u.symbol === SYM && u.seq >= lastBefore + 600 && !paused) paused = new Promise((r) => { resume = r; });
    };
    watch.on('update', cap);
    await next(watch, 'update', (u) => u.seq >= lastBefore + 50);  /* ticks flow while it is down */
    a = await tickgate(flags, { port: a.port });
    await ready(a);
    const restarted = Date.now();
    const recovered = next(c, 'recovered');
    const firstAfter = next(c, 'update', (u) => u.seq > lastBefore);
    lb.backend = a.port;
    const r = await recovered;
    const liveAtRecovery = live;
    watch.off('update', cap);
    paused = null;
    resume();
    const first = await firstAfter;
    const ms = Date.now() - restarted;
    assert.deepEqual(r.recovered, [SYM]);
    await next(c, 'update', (u) => u.seq >= liveAtRecovery + 20);
    running = false;
    await publishing;

    const expect = Array.from({ length: seen[seen.length - 1] - seen[0] + 1 }, (_, i) => seen[0] + i);
    assert.deepEqual(seen, expect, 'every seq exactly once, in order');
    assert.equal(c.stats.gaps, 0);
    assert.equal(first.seq, lastBefore + 1);
    console.log('recovery: first recovered tick %d ms after the restarted node was ready; %d ticks replayed ' +
      '(seq %d..%d); %d duplicates dropped; %d seqs in all', ms, liveAtRecovery - lastBefore, lastBefore + 1,
    liveAtRecovery, c.stats.duplicates, seen.length);
  } finally {
    running = false;
    c.close();
    pub.close();
    watch.close();
    await lb.close();
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
    await rs.kill();
  }
});

test('drain: the reconnect advisory is obeyed, the client moves to the other node and recovers', async () => {
  const { rs, a, b, lb, c, pub } = await twoNodes(['--server.shutdown_grace_ms=2000']);
  try {
    await c.connect();
    await pub.connect();
    await c.subscribe(['AMZN']);
    await publish(pub, 'AMZN', 3);
    await next(c, 'update', (u) => u.seq === 3);
    const advice = next(c, 'reconnect');
    const closed = next(c, 'close');
    const recovered = next(c, 'recovered');
    a.proc.kill('SIGTERM');
    const { after_ms: after } = await advice;
    lb.backend = b.port;        /* A's /ready says 503 now: the balancer moves on */
    const { code, reason } = await closed;
    assert.ok(after >= 0 && after <= 1000, String(after));
    assert.ok(reason === 'reconnect advised' || code === 1001, code + ' ' + reason);
    const fifth = next(c, 'update', (u) => u.seq === 5);
    await publish(pub, 'AMZN', 2);   /* published while the client moves */
    assert.deepEqual((await recovered).recovered, ['AMZN']);
    await fifth;
    assert.equal(c.stats.gaps, 0);
    assert.equal(await a.exited, 0);
  } finally {
    c.close();
    pub.close();
    await lb.close();
    await a.stop();
    assert.equal(await b.stop(), 0);
    await rs.kill();
  }
});
