/* TickgateClient: one logical connection to a tickgate gateway that
 * survives the loss of the socket. Contract: docs/protocol.md (sections
 * 4, 6 to 9); the client's own rules (what is retried, what is dropped,
 * every bound) are in clients/js/README.md. */
import { Emitter } from './emitter.js';
import { BACKOFF_DEFAULTS, backoffDelay } from './backoff.js';
import { SubscriptionError, TickgateError } from './errors.js';

const OPEN = 1;
const MAX_SYMBOLS = 100;          /* protocol bound on one subscribe */
const MAX_ADVICE_MS = 60000;      /* a reconnect advisory is obeyed up to this */
/* A server close with one of these means "this client is broken or banned":
 * reconnecting would only repeat it. */
const FATAL_CLOSE = new Set([1002, 1003, 1007, 1008, 1009]);
/* Requests sent again after a reconnect when the socket died under them;
 * the others (trade, publish, authenticate, admin_broadcast) are rejected
 * with `disconnected`, since the server may or may not have acted. */
const RETRIED = new Set(['subscribe', 'unsubscribe', 'heartbeat', 'get_history', 'analysis',
  'set_options', 'portfolio_subscribe']);

const DEFAULTS = {
  reconnect: true, backoff: BACKOFF_DEFAULTS, random: Math.random,
  requestTimeoutMs: 10000, connectTimeoutMs: 10000, heartbeatMs: 25000,
  maxQueue: 256, maxPending: 1024, authHeader: false
};

export class TickgateClient extends Emitter {
  constructor(url, opts = {}) {
    super();
    this.url = url;
    this.opts = { ...DEFAULTS, ...opts, backoff: { ...BACKOFF_DEFAULTS, ...opts.backoff } };
    this._WS = opts.WebSocket || globalThis.WebSocket;
    if (!this._WS) throw new TypeError('no WebSocket implementation: pass { WebSocket } (e.g. the ws package)');
    this._token = opts.token || null;
    this._apiKey = opts.apiKey || null;
    this._win = opts.window !== undefined ? opts.window : (typeof window !== 'undefined' ? window : null);
    this.state = 'idle';
    this.session = null;            /* the server's `connected` frame while connected */
    /* symbol -> {seq, epoch, delayed, active}: what is (being) subscribed and
     * where its stream stands; resubscribed with `recover` on reconnect. */
    this.subscriptions = new Map();
    /* opts.subscriptions: symbols, or [symbol, {seq, epoch}] pairs (another
     * client's `subscriptions`), subscribed on connect, resuming from there. */
    for (const e of opts.subscriptions || []) {
      const [sym, s] = typeof e === 'string' ? [e, null] : e;
      this.subscriptions.set(sym, { seq: s && s.seq != null ? s.seq : null, epoch: (s && s.epoch) || null,
        delayed: false, active: true });
    }
    this.stats = { connects: 0, duplicates: 0, gaps: 0, recovered: 0, missed: 0 };
    this._ws = null;
    this._gen = 0;
    this._nextId = 1;
    this._pending = new Map();      /* id -> request (sent or queued) */
    this._outbox = [];              /* requests waiting for a connection */
    this._waiters = [];             /* connect() promises */
    this._attempt = 0;
    this._adviceAt = 0;
    this._timers = {};
    this._portfolio = false;
    this._batchMs = 0;
  }

  /* ---------- lifecycle ---------- */

  /** Resolves with the `connected` frame once connected; retries meanwhile
   * (per the reconnect policy); rejects only when the client gives up. */
  connect() {
    if (this.state === 'connected') return Promise.resolve(this.session);
    const p = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === 'idle' || this.state === 'closed') {
      this._closed = false;
      this._watchNetwork(true);
      this._offline ? this._setState('offline') : this._open();
    }
    return p;
  }

  /** Closes for good (no reconnect); pending requests reject with `closed`. */
  close(code = 1000, reason = '') {
    this._closed = true;
    this._watchNetwork(false);
    this._clear('retry');
    const ws = this._ws;
    if (ws) {
      this._detach(ws);
      try { ws.close(code, reason); } catch (e) { /* already closing */ }
      this._lost(code, reason);
    }
    this._giveUp(new TickgateError('closed', 'client closed'));
  }

  async _open() {
    this._clear('retry');
    if (this._closed || this._ws) return;
    const gen = ++this._gen;
    this._setState('connecting');
    if (this.opts.getToken && (this.stats.connects > 0 || !this._token)) {
      try {
        const t = await this.opts.getToken();
        if (t) this._token = t;
      } catch (e) {
        if (gen !== this._gen || this._closed) return;
        this.emit('error', new TickgateError('token_refresh_failed', String(e && e.message || e)));
        return this._retry();
      }
      if (gen !== this._gen || this._closed) return;
    }
    let ws;
    try {
      ws = this._socket();
    } catch (e) {
      this.emit('error', new TickgateError('connect_failed', String(e && e.message || e)));
      return this._retry();
    }
    this._ws = ws;
    ws.onmessage = (ev) => { if (this._ws === ws) this._onText(ev.data); };
    ws.onerror = (ev) => { if (this._ws === ws) this._lastError = ev && (ev.message || (ev.error && ev.error.message)); };
    ws.onclose = (ev) => { if (this._ws === ws) this._onClose(ev.code, ev.reason); };
    this._set('connect', this.opts.connectTimeoutMs, () => this._drop(1006, 'connect timeout'));
  }

  _socket() {
    const u = new URL(this.url);
    const headers = {};
    const [name, qs, value] = this._token ? ['Authorization', 'token', this._token]
      : this._apiKey ? ['X-API-Key', 'api_key', this._apiKey] : [];
    if (name && this.opts.authHeader) headers[name] = name === 'Authorization' ? 'Bearer ' + value : value;
    else if (name) u.searchParams.set(qs, value);
    return this.opts.authHeader ? new this._WS(u.href, [], { headers }) : new this._WS(u.href);
  }

  _onConnected(m) {
    this._clear('connect');
    this.session = m;
    this._attempt = 0;
    this.stats.connects++;
    this._lastError = null;
    this._setState('connected');
    if (this.opts.heartbeatMs > 0) this._beat();
    this._resubscribe();
    if (this._batchMs) this._internal({ type: 'set_options', batch_ms: this._batchMs });
    if (this._portfolio) this._internal({ type: 'portfolio_subscribe' });
    const queued = this._outbox;
    this._outbox = [];
    for (const p of queued) if (this._pending.get(p.msg.id) === p) this._transmit(p);
    for (const w of this._waiters.splice(0)) w.resolve(m);
    this.emit('connected', m);
  }

  _beat() {
    this._set('beat', this.opts.heartbeatMs, () => {
      this._request({ type: 'heartbeat' }, Math.min(this.opts.requestTimeoutMs, this.opts.heartbeatMs), true)
        .then(() => this._beat(), (e) => { if (e.code === 'timeout') this._drop(1006, 'heartbeat timeout'); });
    });
  }

  /** Abandons the current socket at once (dead or unwanted) as if it closed. */
  _drop(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    this._detach(ws);
    try { ws.terminate ? ws.terminate() : ws.close(); } catch (e) { /* ignore */ }
    this._onClose(code, reason);
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  }

  _onClose(code, reason) {
    const error = this._lastError || undefined;
    this._lost(code, reason);
    this.emit('close', { code, reason, error });
    if (this._closed) return;
    if (!this.opts.reconnect || FATAL_CLOSE.has(code) || (code === 4001 && !this.opts.getToken)) {
      this._setState('closed');
      return this._giveUp(new TickgateError('closed', 'connection closed with ' + code + (reason ? ' ' + reason : ''),
        { closeCode: code, closeReason: reason }));
    }
    this._retry();
  }

  /* The socket is gone: requests on it are retried later or rejected. */
  _lost() {
    this._ws = null;
    this.session = null;
    for (const t of ['connect', 'beat', 'advice']) this._clear(t);
    const again = [];
    for (const p of [...this._pending.values()]) {
      if (!p.sent) continue;
      if (RETRIED.has(p.msg.type) && !p.internal) { p.sent = false; p.parts = null; again.push(p); }
      else this._settle(p, new TickgateError('disconnected', 'connection lost before the reply', { request: p.msg }));
    }
    this._outbox = again.concat(this._outbox);
  }

  _retry() {
    if (this._closed) return;
    const now = Date.now();
    let delay;
    if (this._adviceAt) {
      delay = Math.max(0, this._adviceAt - now);
      this._adviceAt = 0;
    } else {
      delay = backoffDelay(this._attempt++, this.opts.backoff, this.opts.random);
    }
    if (this._offline) return this._setState('offline');
    this._setState('reconnecting', { delayMs: delay, at: now + delay, attempt: this._attempt });
    this._set('retry', delay, () => this._open());
  }

  _giveUp(err) {
    for (const p of [...this._pending.values()]) this._settle(p, err);
    this._outbox = [];
    for (const w of this._waiters.splice(0)) w.reject(err);
    this._setState('closed');
  }

  /* The server drains: reconnect after_ms from now (through the load
   * balancer, to another node), or when it closes, whichever is later. */
  _onAdvice(m) {
    const after = Math.min(MAX_ADVICE_MS, Math.max(0, Number(m.after_ms) || 0));
    this._adviceAt = Date.now() + after;
    this._set('advice', after, () => this._drop(1001, 'reconnect advised'));
  }

  /* Browsers: offline drops the socket and holds reconnects; online
   * reconnects at once. */
  _watchNetwork(on) {
    const w = this._win;
    if (!w || typeof w.addEventListener !== 'function') return;
    if (on && !this._net) {
      this._offline = !!(w.navigator && w.navigator.onLine === false);
      this._net = {
        offline: () => {
          this._offline = true;
          if (this._ws) this._drop(1006, 'offline');
          else if (this.state === 'reconnecting') { this._clear('retry'); this._setState('offline'); }
        },
        online: () => {
          this._offline = false;
          if (this._closed || this._ws || (this.state !== 'offline' && this.state !== 'reconnecting')) return;
          this._attempt = 0;
          this._adviceAt = 0;
          this._open();
        }
      };
      for (const k in this._net) w.addEventListener(k, this._net[k]);
    } else if (!on && this._net) {
      for (const k in this._net) w.removeEventListener(k, this._net[k]);
      this._net = null;
    }
  }

  _setState(state, info) {
    const prev = this.state;
    if (prev === state && !info) return;
    this.state = state;
    this.emit('state', { state, prev, ...info });
  }

  _set(name, ms, fn) {
    this._clear(name);
    this._timers[name] = setTimeout(() => { this._timers[name] = null; fn(); }, ms);
  }

  _clear(name) {
    clearTimeout(this._timers[name]);
    this._timers[name] = null;
  }

  /* ---------- incoming ---------- */

  _onText(data) {
    if (typeof data !== 'string') return;
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m !== 'object') return;
    this.emit('message', m);
    switch (m.type) {
      case 'connected': return this._onConnected(m);
      case 'price_update': return this._onUpdate(m);
      case 'price_batch': return (m.updates || []).forEach((u) => this._onUpdate(u));
      case 'reconnect': this._onAdvice(m); break;
      case 'token_expiring': this._refreshToken(); break;
    }
    const p = m.id != null ? this._pending.get(m.id) : undefined;
    if (p) this._onReply(p, m);
    else if (m.type === 'error') this.emit('error', new TickgateError(m.code, m.message));
    else this.emit(m.type, m);
  }

  /* Dedupe by seq: a tick at or below the last seq seen is dropped (a
   * replay overlapping what arrived already); a snapshot resets the
   * symbol's position (recovered:false, a resync, a fresh subscribe). */
  _onUpdate(u) {
    const s = u && this.subscriptions.get(u.symbol);
    if (!s || typeof u.seq !== 'number') return;
    if (u.snapshot) {
      s.seq = u.seq;
    } else if (s.seq !== null && u.seq <= s.seq) {
      this.stats.duplicates++;
      return;
    } else {
      if (s.seq !== null && u.seq > s.seq + 1 && !s.delayed) {
        this.stats.gaps++;
        this.emit('gap', { symbol: u.symbol, from: s.seq + 1, to: u.seq - 1 });
      }
      s.seq = u.seq;
    }
    this.emit('update', u);
  }

  _onReply(p, m) {
    if (m.type === 'error') return this._settle(p, new TickgateError(m.code, m.message, { request: p.msg }));
    if (p.msg.type === 'trade' && m.type === 'trade_rejected') {
      return this._settle(p, new TickgateError('trade_rejected', m.reason, { reason: m.reason, request: p.msg }));
    }
    if (p.msg.type !== 'subscribe') return this._settle(p, null, m);
    /* A subscribe is answered by a confirmation and/or one failure per
     * reason; together they name every symbol asked for exactly once. */
    const parts = p.parts || (p.parts = { confirmed: null, failures: [], left: new Set(p.msg.symbols) });
    if (m.type === 'subscription_confirmed') {
      parts.confirmed = m;
      this._applyConfirmed(m);
      m.symbols.forEach((s) => parts.left.delete(s));
    } else if (m.type === 'subscription_failed') {
      parts.failures.push({ reason: m.reason, symbols: m.symbols });
      for (const s of m.symbols) { this.subscriptions.delete(s); parts.left.delete(s); }
    }
    if (parts.left.size) return;
    if (parts.failures.length) this._settle(p, new SubscriptionError(parts.failures, parts.confirmed));
    else this._settle(p, null, parts.confirmed);
  }

  _applyConfirmed(m) {
    const rec = m.recovered || {};
    const delayed = m.delayed || [];
    for (const sym of m.symbols) {
      let s = this.subscriptions.get(sym);
      if (!s) this.subscriptions.set(sym, s = { seq: null, epoch: null, delayed: false, active: false });
      const epoch = m.epochs && m.epochs[sym];
      if (rec[sym] === false || epoch !== s.epoch) s.seq = null;
      s.epoch = epoch === undefined ? null : epoch;
      s.delayed = delayed.indexOf(sym) >= 0;
      s.active = true;
    }
    if (m.recovered) {
      const got = Object.keys(rec).filter((k) => rec[k] === true);
      const missed = Object.keys(rec).filter((k) => rec[k] !== true);
      this.stats.recovered += got.length;
      this.stats.missed += missed.length;
      this.emit('recovered', { recovered: got, missed, epochs: m.epochs || {} });
    }
  }

  async _refreshToken() {
    if (!this.opts.getToken) return;
    try {
      const token = await this.opts.getToken();
      if (token) await this.authenticate({ token });
    } catch (e) {
      this.emit('error', e instanceof TickgateError ? e : new TickgateError('token_refresh_failed', String(e)));
    }
  }

  /* ---------- requests ---------- */

  /** Sends msg with a fresh id; resolves with the reply, rejects with a
   * TickgateError (server error, `timeout`, `disconnected`, …). While not
   * connected the request waits (at most maxQueue of them); the timeout
   * counts from the call. */
  request(msg, { timeoutMs } = {}) {
    return this._request(msg, timeoutMs, false);
  }

  _internal(msg) {
    return this._request(msg, undefined, true).catch((e) => {
      if (e.code !== 'disconnected' && e.code !== 'closed') this.emit('error', e);
    });
  }

  _request(msg, timeoutMs, internal) {
    if (this.state === 'closed') return Promise.reject(new TickgateError('closed', 'client closed'));
    if (this._pending.size >= this.opts.maxPending) {
      return Promise.reject(new TickgateError('queue_full', 'too many requests awaiting a reply'));
    }
    const t = timeoutMs || this.opts.requestTimeoutMs;
    const p = { msg: { ...msg, id: this._nextId++ }, internal, sent: false, parts: null };
    const done = new Promise((resolve, reject) => { p.resolve = resolve; p.reject = reject; });
    p.timer = setTimeout(() => this._settle(p, new TickgateError('timeout',
      'no reply to ' + msg.type + ' within ' + t + ' ms', { request: p.msg })), t);
    this._pending.set(p.msg.id, p);
    if (this.state === 'connected') this._transmit(p);
    else if (internal || this._outbox.length < this.opts.maxQueue) this._outbox.push(p);
    else this._settle(p, new TickgateError('queue_full', 'too many requests waiting for a connection'));
    return done;
  }

  _transmit(p) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN) return this._outbox.push(p);
    ws.send(JSON.stringify(p.msg));
    p.sent = true;
    this.emit('sent', p.msg);
  }

  _settle(p, err, value) {
    if (this._pending.get(p.msg.id) !== p) return;
    clearTimeout(p.timer);
    this._pending.delete(p.msg.id);
    const i = this._outbox.indexOf(p);
    if (i >= 0) this._outbox.splice(i, 1);
    err ? p.reject(err) : p.resolve(value);
  }

  _resubscribe() {
    const syms = [...this.subscriptions].filter(([, s]) => s.active).map(([k]) => k);
    for (let i = 0; i < syms.length; i += MAX_SYMBOLS) {
      const symbols = syms.slice(i, i + MAX_SYMBOLS);
      const recover = {};
      for (const sym of symbols) {
        const s = this.subscriptions.get(sym);
        if (s.seq !== null && s.epoch !== null && !s.delayed) recover[sym] = { seq: s.seq, epoch: s.epoch };
      }
      this._internal(Object.keys(recover).length ? { type: 'subscribe', symbols, recover } : { type: 'subscribe', symbols });
    }
  }

  /* ---------- the protocol's messages ---------- */

  /** Resolves with subscription_confirmed; rejects with SubscriptionError
   * when any symbol failed (the confirmed ones stay subscribed). */
  subscribe(symbols, opts) {
    const list = [...new Set(symbols)];
    if (list.length > MAX_SYMBOLS) {
      return Promise.reject(new TickgateError('invalid_message', 'at most ' + MAX_SYMBOLS + ' symbols per subscribe'));
    }
    for (const sym of list) {
      if (!this.subscriptions.has(sym)) this.subscriptions.set(sym, { seq: null, epoch: null, delayed: false, active: false });
    }
    return this.request({ type: 'subscribe', symbols: list }, opts).catch((e) => {
      if (!(e instanceof SubscriptionError)) {
        for (const sym of list) {
          const s = this.subscriptions.get(sym);
          if (s && !s.active) this.subscriptions.delete(sym);
        }
      }
      throw e;
    });
  }

  /** Forgets the symbols at once (updates still on their way are dropped);
   * resolves with unsubscription_confirmed. */
  unsubscribe(symbols, opts) {
    for (const sym of symbols) this.subscriptions.delete(sym);
    return this.request({ type: 'unsubscribe', symbols: [...symbols] }, opts);
  }

  heartbeat(opts) { return this.request({ type: 'heartbeat' }, opts); }

  /** In-band identity change; the new credential is also used on reconnect. */
  authenticate(cred, opts) {
    const msg = cred.token ? { type: 'authenticate', token: cred.token } : { type: 'authenticate', api_key: cred.apiKey };
    return this.request(msg, opts).then((m) => {
      if (cred.token) this._token = cred.token;
      else { this._apiKey = cred.apiKey; this._token = null; }
      return m;
    });
  }

  /** batch_ms > 0: updates arrive as price_batch (delivered here one by one). */
  setOptions({ batchMs }, opts) {
    this._batchMs = batchMs;
    return this.request({ type: 'set_options', batch_ms: batchMs }, opts);
  }

  getHistory(symbol, limit, opts) {
    const msg = { type: 'get_history', symbol };
    if (limit !== undefined) msg.limit = limit;
    return this.request(msg, opts);
  }

  analysis(symbol, windowS, opts) {
    const msg = { type: 'analysis', symbol };
    if (windowS !== undefined) msg.window_s = windowS;
    return this.request(msg, opts);
  }

  /** portfolio_update events follow; sent again after each reconnect. */
  portfolioSubscribe(opts) {
    this._portfolio = true;
    return this.request({ type: 'portfolio_subscribe' }, opts);
  }

  /** Resolves with trade_accepted; trade_rejected rejects (code
   * trade_rejected, `reason`). Never retried after a lost connection. */
  trade(order, opts) { return this.request({ ...order, type: 'trade' }, opts); }

  publish(updates, opts) { return this.request({ type: 'publish', updates }, opts); }

  adminBroadcast(message, roles, opts) {
    const msg = { type: 'admin_broadcast', message };
    if (roles) msg.roles = roles;
    return this.request(msg, opts);
  }
}
