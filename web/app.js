/* tickgate demo page, built on the JavaScript client (clients/js, served
 * here as /client/): the client connects, reconnects with backoff, resumes
 * every symbol with `recover` and drops duplicates; this file only draws.
 * Wire contract: docs/protocol.md; the client's rules: clients/js/README.md.
 *
 * Query parameters: ?symbols=AAPL,MSFT puts those symbols on the watchlist;
 * &autoconnect=1 connects anonymously at once.
 *
 * Roles that may trade (trader, super_admin) also get the Trade and
 * Portfolio panels. For tests and the curious, window.tickgateDemo exposes
 * the client, the seqs drawn per symbol (the last 5000) and the gaps seen. */
import { TickgateClient, SubscriptionError } from './client/index.js';

const LOG_MAX = 50;                /* lines kept in the message log */
const FLASH_MS = 600;              /* uptick/downtick highlight */
const ORDERS_MAX = 50;             /* order rows kept */
const SEQS_MAX = 5000;             /* seqs kept per symbol in window.tickgateDemo */
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9.\-:/_]{0,31}$/;
const EMPTY = '\u2014';
const TRADING_ROLES = ['trader', 'super_admin'];
const QUICK_PICKS = ['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN', 'GOOGL', 'META'];
const SUGGESTIONS = ('AAPL MSFT GOOGL AMZN NVDA META TSLA JPM V MA UNH JNJ XOM WMT PG HD BAC KO PEP COST DIS NFLX ' +
  'ADBE CRM ORCL INTC AMD AVGO CSCO QCOM IBM PYPL NKE MCD SBUX BA CAT GS MS WFC CVX PFE MRK LLY T VZ UBER SPY QQQ').split(' ');
const CLOSE_CODES = {
  1000: 'normal closure', 1001: 'server shutting down', 1002: 'protocol error', 1003: 'unsupported data',
  1006: 'abnormal closure', 1007: 'invalid UTF-8', 1008: 'policy violation', 1009: 'message too big',
  1011: 'internal server error', 1013: 'slow consumer disconnected', 4000: 'heartbeat timeout', 4001: 'token expired'
};
const FAIL_REASONS = {
  unknown_symbol: 'not in the symbol universe', invalid_symbol: 'not a valid symbol',
  not_entitled: 'not entitled to this symbol'
};
/* client state -> the badge's word */
const PHASES = { idle: 'disconnected', closed: 'disconnected', connecting: 'connecting', connected: 'connected',
  reconnecting: 'reconnecting', offline: 'offline' };

const $ = (id) => document.getElementById(id);
const el = {};
for (const id of ['status', 'connect-form', 'ws-url', 'token', 'connect', 'disconnect', 'authenticate', 'session',
  'role', 'user-id', 'client-id', 'limit', 'close-info', 'symbol-form', 'symbol-input', 'symbol-list',
  'quick-picks', 'notice', 'sub-count', 'prices-body', 'log', 'clear-log', 'trade-panel', 'trade-form',
  'trade-symbol', 'side-sell', 'trade-quantity', 'trade-type', 'trade-limit', 'place-order', 'trade-estimate',
  'orders-body', 'orders-count', 'portfolio-panel', 'portfolio', 'cash', 'positions-value', 'equity',
  'positions-body']) el[id.replace(/-(\w)/g, (m, c) => c.toUpperCase())] = $(id);

let client = null;                 /* the TickgateClient, once Connect was pressed */
let portfolioAsked = false;       /* portfolio_subscribe sent (the client repeats it on reconnect) */
let countdown = 0;                 /* interval drawing the reconnect countdown */
let noticeTimer = 0;
const rows = new Map();            /* watchlist: symbol -> row */
const lastPrices = new Map();
const orders = { byId: new Map(), list: [] };
const portfolio = { cash: null, rows: new Map() };
const demo = window.tickgateDemo = { client: null, seqs: {}, gaps: 0 };

const volumeFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const moneyFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const qtyFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 4 });
const isNum = (v) => typeof v === 'number' && isFinite(v);
const pad = (n, w) => String(n).padStart(w || 2, '0');
const clockTime = (ms) => { const d = new Date(ms); return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3); };
const money = (v) => (isNum(v) ? moneyFmt.format(v) : EMPTY);
const signed = (v, digits) => { const s = Math.abs(v).toFixed(digits); return Number(s) === 0 ? s : (v > 0 ? '+' : '-') + s; };
const decimalsOf = (x) => { const s = String(x); return s.includes('e') ? 6 : s.includes('.') ? s.length - s.indexOf('.') - 1 : 0; };
const parseSymbols = (text) => String(text || '').toUpperCase().split(/[\s,;]+/).filter(Boolean);
const cleanToken = (raw) => raw.replace(/^\s*Bearer\s+/i, '').replace(/\s+/g, '');
const session = () => (client && client.state === 'connected' ? client.session : null);
const canTrade = () => !!session() && TRADING_ROLES.includes(session().role);

function defaultUrl() {
  if (!location.host) return 'ws://127.0.0.1:8080/ws';
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

function td(tr, cls, text) {
  const cell = document.createElement('td');
  cell.className = cls;
  cell.textContent = text || '';
  tr.appendChild(cell);
  return cell;
}

/* ---------- notices, log ---------- */

function setNotice(text, kind) {
  clearTimeout(noticeTimer);
  el.notice.hidden = !text;
  el.notice.textContent = text || '';
  el.notice.className = 'notice ' + (kind || 'info');
  if (kind === 'info') noticeTimer = setTimeout(() => setNotice(''), 6000);
}

/* dir: 'in' (from server), 'out' (to server) or 'sys' (local event). */
function log(dir, what, isError) {
  const box = el.log;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  const li = document.createElement('li');
  li.className = 'log-' + dir + (isError ? ' log-error' : '');
  const part = (cls, text) => { const s = document.createElement('span'); s.className = cls; s.textContent = text; return s; };
  li.append(part('log-time', clockTime(Date.now())), ' ',
    part('log-dir', dir === 'in' ? '\u2190' : dir === 'out' ? '\u2192' : '\u2022'), ' ',
    part('log-body', typeof what === 'string' ? what : JSON.stringify(what)));
  box.appendChild(li);
  while (box.childElementCount > LOG_MAX) box.firstElementChild.remove();
  if (nearBottom) box.scrollTop = box.scrollHeight;
}

/* ---------- connection ---------- */

function connect(anonymous) {
  if (client && client.state !== 'closed') return;
  let url;
  try {
    url = new URL(el.wsUrl.value.trim() || defaultUrl(), location.href);
  } catch (e) {
    return setNotice('Not a valid URL: ' + el.wsUrl.value, 'error');
  }
  url.protocol = url.protocol.replace(/^http/, 'ws');
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return setNotice('The URL must start with ws:// or wss://', 'error');
  const token = anonymous ? '' : cleanToken(el.token.value);
  /* The watchlist, resumed where the previous client stood. */
  const prev = client ? client.subscriptions : new Map();
  const subs = [...rows.keys()].map((sym) => [sym, prev.get(sym) || null]);
  client = demo.client = new TickgateClient(url.href, { token: token || undefined, subscriptions: subs });
  portfolioAsked = false;
  for (const row of rows.values()) setRowStatus(row, 'pending');
  client.on('state', onState);
  client.on('connected', onConnected);
  client.on('close', onClose);
  client.on('update', applyUpdate);
  client.on('recovered', showRecovered);
  client.on('gap', () => { demo.gaps++; document.body.dataset.gaps = demo.gaps; });
  client.on('error', onError);
  client.on('trade_filled', orderFilled);
  client.on('portfolio_update', (m) => applyPortfolio(m.event));
  client.on('token_expiring', (m) => setNotice('Your token expires at ' + clockTime(m.expires_at) +
    ' \u2014 paste a fresh one and press \u201cSend token\u201d to stay connected.', 'warn'));
  client.on('broadcast', (m) => setNotice('Broadcast' + (m.from ? ' from ' + m.from : '') + ': ' + m.message, 'warn'));
  client.on('message', (m) => {
    if (m.type !== 'price_update' && m.type !== 'price_batch') log('in', m, /error|failed|rejected/.test(m.type));
    if (m.type === 'subscription_confirmed') confirmed(m); /* the client's own resubscribes too */
  });
  client.on('sent', (m) => log('out', m.type === 'authenticate' ? { ...m, token: 'REDACTED', api_key: undefined } : m));
  el.closeInfo.hidden = true;
  setNotice('');
  log('sys', 'connecting to ' + url.origin + url.pathname + (token ? ' (with token)' : ' (anonymous)'));
  client.connect().catch(() => { /* shown by the close and state handlers */ });
}

function onState({ state, at, attempt }) {
  const phase = PHASES[state];
  el.status.textContent = phase;
  el.status.className = 'badge state-' + (phase === 'reconnecting' || phase === 'offline' ? 'connecting' : phase);
  document.body.dataset.phase = phase;
  el.connect.disabled = el.wsUrl.disabled = phase !== 'disconnected';
  el.disconnect.disabled = phase === 'disconnected';
  el.authenticate.disabled = phase !== 'connected';
  clearInterval(countdown);
  if (state === 'reconnecting') {
    const draw = () => { el.status.textContent = 'reconnecting in ' + Math.max(0, (at - Date.now()) / 1000).toFixed(1) + ' s'; };
    draw();
    countdown = setInterval(draw, 100);
    log('sys', 'reconnecting in ' + (at - Date.now()) + ' ms (attempt ' + attempt + ')');
  }
  if (state === 'offline') log('sys', 'browser offline: waiting for the network');
  if (state === 'closed') el.connect.textContent = 'Reconnect';
  if (phase === 'disconnected') {
    for (const row of rows.values()) setRowStatus(row, 'stale');
    el.session.classList.add('stale');
    el.portfolio.classList.add('stale');
    for (const o of orders.list) if (o.status === 'sent') setOrderStatus(o, 'unknown', 'connection closed');
  }
  updateTradeUI();
  updateCount();
}

function onConnected(s) {
  el.closeInfo.hidden = true;
  showSession(s);
  startTrading();
}

function startTrading() {
  if (!canTrade() || portfolioAsked) return;
  portfolioAsked = true;
  client.portfolioSubscribe().then(() => el.portfolio.classList.remove('stale'), onError);
}

function onClose({ code, reason }) {
  const text = 'Closed \u2014 code ' + code + ' (' + (CLOSE_CODES[code] || (code >= 4000 ? 'application close' : 'closed')) + ')' +
    (reason ? ', reason: \u201c' + reason + '\u201d' : '');
  el.closeInfo.textContent = text;
  el.closeInfo.className = 'close-info' + (code === 1000 ? '' : ' bad');
  el.closeInfo.hidden = false;
  log('sys', 'closed: code ' + code + (reason ? ', reason "' + reason + '"' : ''), code !== 1000);
}

function disconnect() {
  if (!client) return;
  client.close(1000, 'client disconnect');
  onClose({ code: 1000, reason: 'client disconnect' });
}

function onError(e) {
  if (e instanceof SubscriptionError) return subscriptionFailed(e);
  setNotice('Error ' + e.code + (e.message && e.message !== e.code ? ': ' + e.message : ''), 'error');
}

function showSession(s) {
  el.session.classList.remove('stale');
  el.role.textContent = (s && s.role) || EMPTY;
  el.userId.textContent = s && s.user_id != null ? String(s.user_id) : EMPTY;
  el.clientId.textContent = (s && s.client_id) || EMPTY;
  const max = s && s.limits ? s.limits.max_subscriptions : undefined;
  el.limit.textContent = isNum(max) ? max + (max === 1 ? ' symbol' : ' symbols') : EMPTY;
  updateTradeUI();
  updateCount();
}

function authenticate() {
  const token = cleanToken(el.token.value);
  if (!token) return setNotice('Paste a token first.', 'error');
  client.authenticate({ token }).then((m) => {
    Object.assign(client.session, { role: m.role, user_id: m.user_id });
    showSession(client.session);
    setNotice('Authenticated as ' + m.user_id + ' (' + m.role + ')', 'info');
    startTrading();
  }, onError);
}

/* ---------- watchlist ---------- */

function addSymbols(list) {
  const bad = list.filter((s) => !SYMBOL_RE.test(s));
  const fresh = [...new Set(list.filter((s) => SYMBOL_RE.test(s) && !rows.has(s)))];
  fresh.forEach(addRow);
  if (bad.length) setNotice('Not a valid symbol: ' + bad.join(', '), 'error');
  else if (!fresh.length) setNotice('Already watching ' + list.join(', '), 'info');
  else setNotice('');
  if (fresh.length && client && client.state !== 'closed') subscribe(fresh);
  updateCount();
}

function subscribe(symbols) {
  symbols.forEach((s) => setRowStatus(rows.get(s), 'pending'));
  client.subscribe(symbols).then(confirmed, (e) => {
    if (e instanceof SubscriptionError) confirmed(e.confirmed || { symbols: [] });
    else symbols.forEach((s) => rows.get(s) && rows.get(s).status === 'pending' && removeRow(s));
    onError(e);
  });
}

function confirmed(m) {
  for (const sym of m.symbols) if (rows.has(sym)) setRowStatus(rows.get(sym), 'active');
  updateCount();
}

function subscriptionFailed(e) {
  for (const f of e.failures) f.symbols.forEach(removeRow);
  const f = e.failures[0];
  let why = FAIL_REASONS[f.reason] || '';
  if (f.reason === 'limit_exceeded') {
    const s = session();
    why = (s ? s.role : 'this') + ' clients may watch ' + (s ? s.limits.max_subscriptions : 'a limited number of') + ' symbols';
  }
  setNotice('Could not add ' + e.failures.map((x) => x.symbols.join(', ')).join(', ') + ' \u2014 ' + f.reason +
    (why ? ': ' + why : ''), 'error');
  updateCount();
}

function removeSymbol(sym) {
  if (!rows.has(sym)) return;
  if (client && client.state !== 'closed') client.unsubscribe([sym]).catch(onError);
  removeRow(sym);
  updateCount();
}

function updateCount() {
  const active = [...rows.values()].filter((r) => r.status === 'active').length;
  const s = session();
  el.subCount.textContent = s ? active + ' / ' + s.limits.max_subscriptions : rows.size ? String(rows.size) : '';
  for (const b of el.quickPicks.children) b.setAttribute('aria-pressed', String(rows.has(b.dataset.symbol)));
  el.pricesBody.querySelector('tr.empty-row').hidden = rows.size > 0;
  refreshTradeSymbols();
}

/* ---------- table ---------- */

const CELLS = ['price', 'bid', 'ask', 'change', 'change-pct', 'volume', 'seq', 'updated'];
const STATUS_TAGS = { queued: 'queued', pending: 'subscribing\u2026', active: '', stale: 'stale' };

function addRow(sym) {
  const tr = document.createElement('tr');
  tr.dataset.symbol = sym;
  const symCell = td(tr, 'symbol');
  const row = { sym, tr, cells: {}, status: 'queued', lastPrice: null, decimals: 2, flashTimer: 0 };
  for (const [key, cls, text] of [['name', 'sym', sym], ['tag', 'tag', ''], ['recov', 'recov', '']]) {
    row[key] = document.createElement('span');
    row[key].className = cls;
    row[key].textContent = text;
    symCell.appendChild(row[key]);
  }
  for (const c of CELLS) row.cells[c] = td(tr, c + ' num');
  const rm = document.createElement('button');
  rm.type = 'button';
  rm.className = 'remove';
  rm.textContent = '\u00d7';
  rm.title = 'Unsubscribe ' + sym;
  rm.setAttribute('aria-label', rm.title);
  rm.addEventListener('click', () => removeSymbol(sym));
  td(tr, 'actions').appendChild(rm);
  el.pricesBody.appendChild(tr);
  rows.set(sym, row);
  setRowStatus(row, 'queued');
}

function setRowStatus(row, status) {
  row.status = status;
  row.tr.className = 'row-' + status + (row.delayed ? ' delayed' : '');
  row.tag.textContent = row.delayed && status === 'active' ? 'delayed' : STATUS_TAGS[status];
}

function removeRow(sym) {
  const row = rows.get(sym);
  if (!row) return;
  clearTimeout(row.flashTimer);
  row.tr.remove();
  rows.delete(sym);
}

/* The recovered indicator: per row, and a notice for the whole answer. */
function showRecovered({ recovered, missed }) {
  for (const [list, ok] of [[recovered, true], [missed, false]]) {
    for (const sym of list) {
      const row = rows.get(sym);
      if (!row) continue;
      row.recov.textContent = ok ? 'recovered' : 'resynced';
      row.recov.className = 'recov ' + (ok ? 'recov-ok' : 'recov-missed');
      row.recov.title = ok ? 'every tick missed while disconnected was replayed'
        : 'the missed ticks are no longer available: fresh snapshot';
    }
  }
  setNotice('Reconnected: ' + (recovered.length ? 'recovered ' + recovered.join(', ') : '') +
    (recovered.length && missed.length ? '; ' : '') + (missed.length ? 'snapshot for ' + missed.join(', ') : ''),
  missed.length ? 'warn' : 'info');
}

function flash(row, cls) {
  const cell = row.cells.price;
  cell.classList.remove('flash-up', 'flash-down');
  void cell.offsetWidth; /* restart the animation when ticks come fast */
  cell.classList.add(cls);
  clearTimeout(row.flashTimer);
  row.flashTimer = setTimeout(() => cell.classList.remove('flash-up', 'flash-down'), FLASH_MS);
}

function applyUpdate(u) {
  const row = rows.get(u.symbol);
  if (!row) return;
  if (!u.snapshot) {
    const seqs = demo.seqs[u.symbol] || (demo.seqs[u.symbol] = []);
    seqs.push(u.seq);
    if (seqs.length > SEQS_MAX) seqs.splice(0, seqs.length - SEQS_MAX);
  }
  row.delayed = !!u.delayed; /* delayed data is marked, so nobody trades on it as live */
  setRowStatus(row, 'active');
  const c = row.cells;
  for (const v of [u.price, u.bid, u.ask]) if (isNum(v)) row.decimals = Math.min(6, Math.max(row.decimals, decimalsOf(v)));
  const px = (v) => (isNum(v) ? v.toFixed(row.decimals) : EMPTY);
  if (row.lastPrice !== null && u.price !== row.lastPrice) flash(row, u.price > row.lastPrice ? 'flash-up' : 'flash-down');
  row.lastPrice = u.price;
  lastPrices.set(u.symbol, u.price);
  if (portfolio.rows.has(u.symbol)) updatePortfolioValues();
  if (u.symbol === el.tradeSymbol.value) updateEstimate();
  c.price.textContent = px(u.price);
  c.bid.textContent = px(u.bid);
  c.ask.textContent = px(u.ask);
  setSigned(c.change, u.change, isNum(u.change) ? signed(u.change, row.decimals) : EMPTY);
  setSigned(c['change-pct'], u.change_percent, isNum(u.change_percent) ? signed(u.change_percent, 2) + '%' : EMPTY);
  c.volume.textContent = isNum(u.volume) ? volumeFmt.format(u.volume) : EMPTY;
  c.seq.textContent = String(u.seq);
  row.tr.dataset.seq = u.seq;
  c.updated.textContent = clockTime(u.timestamp);
  c.updated.title = new Date(u.timestamp).toString() + (u.snapshot ? ' (snapshot)' : '') + (u.delayed ? ' (delayed)' : '');
}

function setSigned(cell, v, text) {
  cell.textContent = text;
  cell.classList.toggle('pos', isNum(v) && v >= 0);
  cell.classList.toggle('neg', isNum(v) && v < 0);
}

/* ---------- trading ---------- */

/* The Trade and Portfolio panels show for roles that may trade; they stay
 * (read-only) after a disconnect. */
function updateTradeUI() {
  const can = canTrade();
  if (can || session()) el.tradePanel.hidden = el.portfolioPanel.hidden = !can;
  el.placeOrder.disabled = !can || !el.tradeSymbol.value;
  el.placeOrder.title = !can ? 'Connect with a trader token to place orders'
    : !el.tradeSymbol.value ? 'Add a symbol to the watchlist first' : '';
  const limit = el.tradeType.value === 'limit';
  el.tradeLimit.disabled = !limit;
  el.tradeLimit.placeholder = limit ? 'price' : 'market';
  el.tradeForm.classList.toggle('selling', el.sideSell.checked);
}

/* The symbol select follows the watchlist. */
function refreshTradeSymbols() {
  const want = [...rows.keys()];
  const have = Array.from(el.tradeSymbol.options, (o) => o.value).filter(Boolean);
  if (el.tradeSymbol.options.length && want.join() === have.join()) return;
  const keep = el.tradeSymbol.value;
  el.tradeSymbol.textContent = '';
  for (const sym of want.length ? want : ['']) el.tradeSymbol.add(new Option(sym || 'add a symbol first', sym));
  el.tradeSymbol.value = want.includes(keep) ? keep : (want[0] || '');
  el.tradeSymbol.disabled = !want.length;
  updateTradeUI();
  updateEstimate();
}

function updateEstimate() {
  const sym = el.tradeSymbol.value;
  const qty = Number(el.tradeQuantity.value);
  const limit = el.tradeType.value === 'limit';
  const px = limit ? Number(el.tradeLimit.value) : lastPrices.get(sym);
  el.tradeEstimate.textContent = !sym || !(qty > 0) || !(px > 0) ? ''
    : (el.sideSell.checked ? 'Proceeds' : 'Cost') + ' \u2248 ' + qtyFmt.format(qty) + ' \u00d7 ' + px + ' = ' +
      money(qty * px) + (limit ? ' at the limit' : ' at the last price');
}

function placeOrder() {
  if (!canTrade()) return setNotice('Connect with a trader token to place orders.', 'error');
  const order = { symbol: el.tradeSymbol.value, side: el.sideSell.checked ? 'sell' : 'buy',
    quantity: Number(el.tradeQuantity.value), order_type: el.tradeType.value === 'limit' ? 'limit' : 'market' };
  if (!order.symbol) return setNotice('Add a symbol to the watchlist first.', 'error');
  if (!(order.quantity > 0)) return setNotice('Quantity must be a number above 0.', 'error');
  if (order.order_type === 'limit') {
    order.limit_price = Number(el.tradeLimit.value);
    if (!(order.limit_price > 0)) return setNotice('A limit order needs a limit price above 0.', 'error');
  }
  const o = addOrder({ ...order, status: 'sent', time: Date.now() });
  client.trade(order).then((m) => {
    o.idCell.textContent = o.tr.dataset.orderId = m.order_id;
    orders.byId.set(m.order_id, o);
    if (o.status === 'sent') setOrderStatus(o, 'accepted');
  }, (e) => {
    setOrderStatus(o, e.code === 'disconnected' ? 'unknown' : 'rejected', (e.reason || e.code).replace(/_/g, ' '));
    setNotice('Order rejected: ' + (e.reason || e.code) + (e.reason ? '' : ' \u2014 ' + e.message), 'error');
  });
}

function addOrder(o) {
  el.ordersBody.querySelector('tr.empty-row').hidden = true;
  const tr = o.tr = document.createElement('tr');
  td(tr, 'time', clockTime(o.time));
  o.idCell = td(tr, 'order-id', o.order_id || 'sent');
  td(tr, 'side ' + o.side, o.side);
  td(tr, 'qty num', qtyFmt.format(o.quantity));
  td(tr, 'sym', o.symbol);
  td(tr, 'type', o.order_type + (o.limit_price ? ' @ ' + o.limit_price : ''));
  o.priceCell = td(tr, 'price num', EMPTY);
  const st = td(tr, 'status');
  o.badge = st.appendChild(document.createElement('span'));
  o.badge.className = 'order-status';
  o.reasonEl = st.appendChild(document.createElement('span'));
  o.reasonEl.className = 'reason';
  el.ordersBody.insertBefore(tr, el.ordersBody.querySelector('tr:not(.empty-row)'));
  orders.list.push(o);
  if (o.order_id) orders.byId.set(tr.dataset.orderId = o.order_id, o);
  while (orders.list.length > ORDERS_MAX) {
    const old = orders.list.shift();
    old.tr.remove();
    orders.byId.delete(old.tr.dataset.orderId);
  }
  setOrderStatus(o, o.status);
  el.ordersCount.textContent = String(orders.list.length);
  return o;
}

function setOrderStatus(o, status, reason) {
  o.status = o.tr.dataset.status = o.badge.textContent = status;
  o.tr.className = 'status-' + status;
  o.reasonEl.textContent = reason || '';
  o.reasonEl.hidden = !reason;
}

function orderFilled(f) {
  const o = orders.byId.get(f.order_id) || /* placed from another session of this user */
    addOrder({ order_id: f.order_id, symbol: f.symbol, side: f.side, quantity: f.quantity, order_type: 'other session',
      status: 'filled', time: f.timestamp });
  o.priceCell.textContent = money(f.price);
  setOrderStatus(o, 'filled');
}

/* portfolio_update: snapshots and fills carry cash and positions. */
function applyPortfolio(ev) {
  if (ev.kind === 'order_cancelled' && orders.byId.has(ev.order_id)) {
    setOrderStatus(orders.byId.get(ev.order_id), 'cancelled', (ev.reason || '').replace(/_/g, ' '));
  }
  if (!isNum(ev.cash) || !Array.isArray(ev.positions)) return;
  portfolio.cash = ev.cash;
  el.portfolio.classList.remove('stale');
  for (const r of portfolio.rows.values()) r.tr.remove();
  portfolio.rows.clear();
  el.positionsBody.querySelector('tr.empty-row').hidden = ev.positions.length > 0;
  for (const p of ev.positions) {
    const tr = document.createElement('tr');
    tr.dataset.symbol = p.symbol;
    const cells = {};
    for (const [cls, text] of [['sym', p.symbol], ['qty', qtyFmt.format(p.quantity)], ['avg', money(p.avg_price)],
      ['last'], ['value'], ['pnl']]) cells[cls] = td(tr, cls + (cls === 'sym' ? '' : ' num'), text || EMPTY);
    el.positionsBody.appendChild(tr);
    portfolio.rows.set(p.symbol, { tr, cells, pos: p });
  }
  el.portfolio.dataset.state = ev.positions.length ? 'positions' : 'cash';
  updatePortfolioValues();
}

function updatePortfolioValues() {
  let value = 0;
  for (const { pos: p, cells } of portfolio.rows.values()) {
    const live = lastPrices.get(p.symbol);
    const mv = p.quantity * (isNum(live) ? live : p.avg_price);
    const pnl = isNum(live) ? (live - p.avg_price) * p.quantity : null;
    value += mv;
    cells.last.textContent = money(live);
    cells.value.textContent = money(mv);
    cells.value.title = isNum(live) ? 'at the live price' : 'at the average price (no live price)';
    setSigned(cells.pnl, pnl === null ? undefined : pnl, pnl === null ? EMPTY : signed(pnl, 2));
  }
  el.cash.textContent = money(portfolio.cash);
  el.positionsValue.textContent = isNum(portfolio.cash) ? money(value) : EMPTY;
  el.equity.textContent = isNum(portfolio.cash) ? money(portfolio.cash + value) : EMPTY;
}

/* ---------- wiring ---------- */

el.wsUrl.value = defaultUrl();
el.token.value = '';
for (const sym of SUGGESTIONS) el.symbolList.appendChild(new Option('', sym));
for (const sym of QUICK_PICKS) {
  const b = document.createElement('button');
  Object.assign(b, { type: 'button', className: 'quick-pick', textContent: sym, title: 'Watch / stop watching ' + sym });
  b.dataset.symbol = sym;
  b.addEventListener('click', () => (rows.has(sym) ? removeSymbol(sym) : addSymbols([sym])));
  el.quickPicks.appendChild(b);
}
el.connectForm.addEventListener('submit', (e) => { e.preventDefault(); connect(false); });
el.disconnect.addEventListener('click', disconnect);
el.authenticate.addEventListener('click', authenticate);
el.symbolForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const list = parseSymbols(el.symbolInput.value);
  if (list.length) addSymbols(list);
  el.symbolInput.value = '';
  el.symbolInput.focus();
});
el.clearLog.addEventListener('click', () => { el.log.textContent = ''; });
el.tradeForm.addEventListener('submit', (e) => { e.preventDefault(); placeOrder(); });
el.tradeForm.addEventListener('change', () => { updateTradeUI(); updateEstimate(); });
el.tradeForm.addEventListener('input', updateEstimate);
onState({ state: 'idle' });
const params = new URLSearchParams(location.search);
const initial = parseSymbols(params.get('symbols'));
if (initial.length) addSymbols(initial);
if (/^(1|true|yes|on)$/i.test(params.get('autoconnect') || '')) connect(true);
