/* tickgate demo page: connect to the gateway's WebSocket, subscribe to
 * symbols and watch their prices tick. Plain ES2017, no dependencies.
 * Wire contract: docs/protocol.md (shared spec PROTOCOL.md, sections 2, 4, 5).
 *
 * Query parameters: ?symbols=AAPL,MSFT puts those symbols on the watchlist;
 * &autoconnect=1 connects anonymously at once (they are subscribed as soon
 * as the server's "connected" frame arrives).
 *
 * Roles that may trade (trader, super_admin) also get the Trade and
 * Portfolio panels: orders go out as "trade", the page sends
 * portfolio_subscribe on connect and shows portfolio_update events. */
'use strict';

(function () {
  const HEARTBEAT_MS = 25000;        /* below the server's 30 s ping interval */
  const LOG_MAX = 50;                /* lines kept in the message log */
  const FLASH_MS = 600;              /* uptick/downtick highlight */
  const MAX_PER_SUBSCRIBE = 100;     /* protocol bound on one subscribe */
  const NO_WELCOME_MS = 2000;        /* subscribe anyway if "connected" never comes */
  const SYMBOL_RE = /^[A-Z0-9][A-Z0-9.\-:/_]{0,31}$/;
  const EMPTY = '\u2014';            /* em dash for "no value" */

  const SUGGESTIONS = [
    ['AAPL', 'Apple'], ['MSFT', 'Microsoft'], ['GOOGL', 'Alphabet'], ['AMZN', 'Amazon'],
    ['NVDA', 'NVIDIA'], ['META', 'Meta Platforms'], ['TSLA', 'Tesla'], ['JPM', 'JPMorgan Chase'],
    ['V', 'Visa'], ['MA', 'Mastercard'], ['UNH', 'UnitedHealth'], ['JNJ', 'Johnson & Johnson'],
    ['XOM', 'Exxon Mobil'], ['WMT', 'Walmart'], ['PG', 'Procter & Gamble'], ['HD', 'Home Depot'],
    ['BAC', 'Bank of America'], ['KO', 'Coca-Cola'], ['PEP', 'PepsiCo'], ['COST', 'Costco'],
    ['DIS', 'Disney'], ['NFLX', 'Netflix'], ['ADBE', 'Adobe'], ['CRM', 'Salesforce'],
    ['ORCL', 'Oracle'], ['INTC', 'Intel'], ['AMD', 'AMD'], ['AVGO', 'Broadcom'],
    ['CSCO', 'Cisco'], ['QCOM', 'Qualcomm'], ['IBM', 'IBM'], ['PYPL', 'PayPal'],
    ['NKE', 'Nike'], ['MCD', "McDonald's"], ['SBUX', 'Starbucks'], ['BA', 'Boeing'],
    ['CAT', 'Caterpillar'], ['GS', 'Goldman Sachs'], ['MS', 'Morgan Stanley'], ['WFC', 'Wells Fargo'],
    ['CVX', 'Chevron'], ['PFE', 'Pfizer'], ['MRK', 'Merck'], ['LLY', 'Eli Lilly'],
    ['T', 'AT&T'], ['VZ', 'Verizon'], ['UBER', 'Uber'], ['SPY', 'S&P 500 ETF'], ['QQQ', 'Nasdaq-100 ETF']
  ];
  const QUICK_PICKS = ['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN', 'GOOGL', 'META'];

  const CLOSE_CODES = {
    1000: 'normal closure', 1001: 'server shutting down', 1002: 'protocol error',
    1003: 'unsupported data', 1005: 'no status code', 1006: 'abnormal closure',
    1007: 'invalid UTF-8', 1008: 'policy violation', 1009: 'message too big',
    1011: 'internal server error', 1013: 'slow consumer disconnected',
    4000: 'heartbeat timeout', 4001: 'token expired'
  };
  const FAIL_REASONS = {
    unknown_symbol: 'not in the symbol universe',
    invalid_symbol: 'not a valid symbol',
    forbidden: 'your role may not subscribe',
    not_entitled: 'not entitled to this symbol'
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'), form: $('connect-form'), url: $('ws-url'), token: $('token'),
    connect: $('connect'), disconnect: $('disconnect'), authenticate: $('authenticate'),
    session: $('session'), role: $('role'), userId: $('user-id'), clientId: $('client-id'),
    limit: $('limit'), closeInfo: $('close-info'),
    symbolForm: $('symbol-form'), symbolInput: $('symbol-input'), addSymbol: $('add-symbol'),
    datalist: $('symbol-list'), quickPicks: $('quick-picks'), notice: $('notice'),
    subCount: $('sub-count'), tbody: $('prices-body'), log: $('log'), clearLog: $('clear-log'),
    tradePanel: $('trade-panel'), tradeForm: $('trade-form'), tradeSymbol: $('trade-symbol'),
    sideBuy: $('side-buy'), sideSell: $('side-sell'), tradeQty: $('trade-quantity'), tradeType: $('trade-type'),
    tradeLimit: $('trade-limit'), placeOrder: $('place-order'), tradeEstimate: $('trade-estimate'),
    ordersBody: $('orders-body'), ordersCount: $('orders-count'),
    portfolioPanel: $('portfolio-panel'), portfolio: $('portfolio'), cash: $('cash'),
    positionsValue: $('positions-value'), equity: $('equity'), positionsBody: $('positions-body')
  };

  /* Connection state; one socket at a time. */
  const conn = {
    ws: null,            /* the current WebSocket, or null */
    phase: 'disconnected', /* disconnected | connecting | connected | closing */
    session: null,       /* the server's "connected" frame */
    nextId: 1,           /* id of the next request we send */
    pending: new Map(),  /* request id -> {type, symbols} awaiting a reply */
    heartbeat: 0,        /* setInterval handle */
    welcomeTimer: 0,     /* fallback in case no "connected" frame arrives */
    wasOpen: false,      /* the current socket reached OPEN */
    userClosed: false,   /* Disconnect was pressed for the current socket */
    portfolioSent: false /* portfolio_subscribe sent on the current socket */
  };

  const TRADING_ROLES = ['trader', 'super_admin'];
  const ORDERS_MAX = 50;             /* order rows kept */
  /* Orders of this page: request id -> order, and order_id -> order. */
  const orders = { byRequest: new Map(), byId: new Map(), list: [] };
  /* Paper portfolio from portfolio_update: {cash, positions: [{symbol, quantity, avg_price}]}. */
  const portfolio = { cash: null, positions: [], rows: new Map() };
  /* Last price seen per symbol (live updates and snapshots). */
  const lastPrices = new Map();
  /* Where each symbol's stream stands: symbol -> {seq, epoch}. Sent as
   * `recover` when re-subscribing after a reconnect, so the server replays
   * exactly the ticks missed (or says recovered:false and sends a snapshot). */
  const resume = new Map();

  /* Watchlist: symbol -> row. status: queued (not sent yet), pending (sent,
   * no reply yet), active (confirmed), stale (connection gone). */
  const rows = new Map();

  const volumeFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const moneyFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const qtyFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 4 });
  let noticeTimer = 0;

  /* ---------- small helpers ---------- */

  const pad = (n, w) => String(n).padStart(w || 2, '0');

  function clockTime(ms) {
    const d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) +
      '.' + pad(d.getMilliseconds(), 3);
  }

  const isNum = (v) => typeof v === 'number' && isFinite(v);

  function decimalsOf(x) {
    const s = String(x);
    if (s.indexOf('e') >= 0) return 6;
    const dot = s.indexOf('.');
    return dot < 0 ? 0 : s.length - dot - 1;
  }

  function signed(v, digits) {
    const s = Math.abs(v).toFixed(digits);
    if (Number(s) === 0) return s;
    return (v > 0 ? '+' : '-') + s;
  }

  function defaultUrl() {
    if (!location.host) return 'ws://127.0.0.1:8080/ws';
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  function redactUrl(u) {
    const c = new URL(u.href);
    if (c.searchParams.has('token')) c.searchParams.set('token', 'REDACTED');
    if (c.searchParams.has('api_key')) c.searchParams.set('api_key', 'REDACTED');
    return c.href;
  }

  function cleanToken(raw) {
    return raw.replace(/^\s*Bearer\s+/i, '').replace(/\s+/g, '');
  }

  function parseSymbols(text) {
    return String(text || '').toUpperCase().split(/[\s,;]+/).filter(Boolean);
  }

  /* ---------- notices, log ---------- */

  function setNotice(text, kind) {
    clearTimeout(noticeTimer);
    if (!text) {
      el.notice.hidden = true;
      el.notice.textContent = '';
      return;
    }
    el.notice.textContent = text;
    el.notice.className = 'notice ' + (kind || 'info');
    el.notice.hidden = false;
    if (kind === 'info') noticeTimer = setTimeout(() => setNotice(''), 6000);
  }

  /* dir: 'in' (from server), 'out' (to server) or 'sys' (local event). */
  function log(dir, what, isError) {
    const nearBottom = el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 24;
    const li = document.createElement('li');
    li.className = 'log-' + dir + (isError ? ' log-error' : '');
    const t = document.createElement('span');
    t.className = 'log-time';
    t.textContent = clockTime(Date.now());
    const arrow = document.createElement('span');
    arrow.className = 'log-dir';
    arrow.textContent = dir === 'in' ? '\u2190' : dir === 'out' ? '\u2192' : '\u2022';
    const body = document.createElement('span');
    body.className = 'log-body';
    body.textContent = typeof what === 'string' ? what : JSON.stringify(what);
    li.append(t, ' ', arrow, ' ', body); /* spaces: a copied line reads "time → {json}" */
    el.log.appendChild(li);
    while (el.log.childElementCount > LOG_MAX) el.log.removeChild(el.log.firstElementChild);
    if (nearBottom) el.log.scrollTop = el.log.scrollHeight;
  }

  /* ---------- connection ---------- */

  function setPhase(phase) {
    conn.phase = phase;
    el.status.textContent = phase;
    el.status.className = 'badge state-' + phase;
    document.body.dataset.phase = phase;
    const busy = phase !== 'disconnected';
    el.connect.disabled = busy;
    el.url.disabled = busy;
    el.disconnect.disabled = !busy || phase === 'closing';
    el.authenticate.disabled = phase !== 'connected';
    updateTradeUI();
  }

  function send(msg) {
    const ws = conn.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    if (msg.type === 'authenticate') log('out', Object.assign({}, msg, { token: 'REDACTED' }));
    else log('out', msg);
    return true;
  }

  function request(msg) {
    msg.id = conn.nextId++;
    if (!send(msg)) return 0;
    conn.pending.set(msg.id, { type: msg.type, symbols: msg.symbols || [] });
    return msg.id;
  }

  function connect(anonymous) {
    if (conn.ws) return;
    let url;
    try {
      url = new URL(el.url.value.trim() || defaultUrl(), location.href);
    } catch (e) {
      setNotice('Not a valid URL: ' + el.url.value, 'error');
      return;
    }
    if (url.protocol === 'http:') url.protocol = 'ws:';
    else if (url.protocol === 'https:') url.protocol = 'wss:';
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      setNotice('The URL must start with ws:// or wss://', 'error');
      return;
    }
    const token = anonymous ? '' : cleanToken(el.token.value);
    if (token) url.searchParams.set('token', token);

    let ws;
    try {
      ws = new WebSocket(url.href);
    } catch (e) {
      setNotice('Cannot connect: ' + e.message, 'error');
      return;
    }
    conn.ws = ws;
    conn.wasOpen = false;
    conn.userClosed = false;
    conn.session = null;
    conn.portfolioSent = false;
    conn.pending.clear();
    el.closeInfo.hidden = true;
    showSession(null);
    setNotice('');
    setPhase('connecting');
    log('sys', 'connecting to ' + redactUrl(url) + (token ? ' (with token)' : ' (anonymous)'));

    ws.onopen = () => {
      if (ws !== conn.ws) return;
      conn.wasOpen = true;
      setPhase('connected');
      conn.heartbeat = setInterval(() => send({ type: 'heartbeat' }), HEARTBEAT_MS);
      conn.welcomeTimer = setTimeout(() => { if (!conn.session) subscribeWatchlist(); }, NO_WELCOME_MS);
    };
    ws.onmessage = (ev) => {
      if (ws !== conn.ws) return;
      if (typeof ev.data !== 'string') {
        log('sys', 'ignored a binary frame', true);
        return;
      }
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        log('sys', 'unparsable frame: ' + ev.data.slice(0, 200), true);
        return;
      }
      if (msg && typeof msg === 'object') handleMessage(msg);
    };
    ws.onerror = () => {
      if (ws === conn.ws) log('sys', 'WebSocket error', true);
    };
    ws.onclose = (ev) => {
      if (ws === conn.ws) onClosed(ev);
    };
  }

  function disconnect() {
    if (!conn.ws) return;
    conn.userClosed = true;
    setPhase('closing');
    conn.ws.close(1000, 'client disconnect');
  }

  function onClosed(ev) {
    clearInterval(conn.heartbeat);
    clearTimeout(conn.welcomeTimer);
    conn.ws = null;
    conn.pending.clear();
    const opened = conn.wasOpen;
    for (const row of rows.values()) setRowStatus(row, 'stale');
    el.session.classList.add('stale');
    for (const o of orders.list) if (o.status === 'sent') setOrderStatus(o, 'unknown', 'connection closed');
    el.portfolio.classList.add('stale');
    setPhase('disconnected');
    el.connect.textContent = 'Reconnect';

    const meaning = CLOSE_CODES[ev.code] || (ev.code >= 4000 ? 'application close' : 'closed');
    let text = (opened ? 'Closed' : conn.userClosed ? 'Connection attempt cancelled' : 'Could not connect') +
      ' \u2014 code ' + ev.code + ' (' + meaning + ')';
    if (ev.reason) text += ', reason: \u201c' + ev.reason + '\u201d';
    if (!opened && !conn.userClosed) text += '. The server refused the handshake (invalid or expired token, blocked IP, connection limit) or is unreachable.';
    el.closeInfo.textContent = text;
    el.closeInfo.className = 'close-info' + (conn.userClosed ? '' : ' bad');
    el.closeInfo.hidden = false;
    log('sys', 'closed: code ' + ev.code + (ev.reason ? ', reason "' + ev.reason + '"' : '') +
      (ev.wasClean ? '' : ' (not clean)'), ev.code !== 1000);
    updateCount();
  }

  function showSession(s) {
    el.session.classList.remove('stale');
    el.role.textContent = s && s.role ? s.role : EMPTY;
    el.userId.textContent = s && s.user_id != null ? String(s.user_id) : EMPTY;
    el.clientId.textContent = s && s.client_id ? s.client_id : EMPTY;
    const max = s && s.limits ? s.limits.max_subscriptions : undefined;
    el.limit.textContent = isNum(max) ? max + (max === 1 ? ' symbol' : ' symbols') : EMPTY;
    updateCount();
  }

  function symbolLimit() {
    const s = conn.session;
    return s && s.limits && isNum(s.limits.max_subscriptions) ? s.limits.max_subscriptions : null;
  }

  /* ---------- server messages ---------- */

  function handleMessage(msg) {
    switch (msg.type) {
      case 'price_update':
        applyUpdate(msg);
        return;
      case 'price_batch':
        if (Array.isArray(msg.updates)) msg.updates.forEach(applyUpdate);
        return;
      default:
        break;
    }
    const isError = msg.type === 'error' || msg.type === 'subscription_failed' || msg.type === 'trade_rejected';
    log('in', msg, isError);
    const req = msg.id != null ? conn.pending.get(msg.id) : undefined;

    switch (msg.type) {
      case 'connected':
        clearTimeout(conn.welcomeTimer);
        conn.session = msg;
        showSession(msg);
        subscribeWatchlist();
        startTrading();
        break;
      case 'subscription_confirmed':
        for (const sym of msg.symbols || []) {
          const row = rows.get(sym); /* none if removed while the request was in flight */
          if (row) setRowStatus(row, 'active');
          const epoch = msg.epochs && msg.epochs[sym];
          const prev = resume.get(sym);
          if (typeof epoch === 'string') resume.set(sym, { epoch, seq: prev && prev.epoch === epoch ? prev.seq : null });
        }
        showRecovered(msg.recovered);
        if (msg.id != null) conn.pending.delete(msg.id);
        updateCount();
        break;
      case 'subscription_failed': {
        const syms = Array.isArray(msg.symbols) ? msg.symbols : [];
        for (const sym of syms) {
          const row = rows.get(sym);
          if (row && row.status !== 'active') removeRow(sym);
        }
        setNotice('Could not add ' + syms.join(', ') + ' \u2014 ' + failureText(msg), 'error');
        if (msg.id != null) conn.pending.delete(msg.id);
        updateCount();
        break;
      }
      case 'unsubscription_confirmed':
        if (msg.id != null) conn.pending.delete(msg.id);
        break;
      case 'error':
        setNotice('Error ' + (msg.code || '') + (msg.message ? ': ' + msg.message : ''), 'error');
        if (req) {
          conn.pending.delete(msg.id);
          if (req.type === 'trade') orderRejected(msg.id, msg.code || 'error', msg.message);
          if (req.type === 'subscribe') {
            for (const sym of req.symbols) {
              const row = rows.get(sym);
              if (row && row.status === 'pending') removeRow(sym);
            }
          }
        }
        updateCount();
        break;
      case 'authenticated':
        conn.session = Object.assign({}, conn.session || {}, msg);
        showSession(conn.session);
        if (!msg.limits) el.limit.textContent = EMPTY;
        setNotice('Authenticated as ' + msg.user_id + ' (' + msg.role + ')', 'info');
        startTrading();
        break;
      case 'token_expiring':
        setNotice('Your token expires at ' + (isNum(msg.expires_at) ? clockTime(msg.expires_at) : 'once') +
          ' \u2014 paste a fresh one and press \u201cSend token\u201d to stay connected.', 'warn');
        break;
      case 'broadcast':
        setNotice('Broadcast' + (msg.from ? ' from ' + msg.from : '') + ': ' + msg.message, 'warn');
        break;
      case 'portfolio_subscribed':
        if (msg.id != null) conn.pending.delete(msg.id);
        el.portfolio.classList.remove('stale');
        break;
      case 'portfolio_update':
        applyPortfolio(msg.event);
        break;
      case 'trade_accepted':
        if (msg.id != null) conn.pending.delete(msg.id);
        orderAccepted(msg.id, msg.order_id);
        break;
      case 'trade_rejected':
        if (msg.id != null) conn.pending.delete(msg.id);
        orderRejected(msg.id, msg.reason || 'rejected');
        break;
      case 'trade_filled':
        orderFilled(msg);
        break;
      default:
        if (req) conn.pending.delete(msg.id);
        break;
    }
  }

  function failureText(msg) {
    const reason = msg.reason || 'failed';
    if (msg.message) return reason + ': ' + msg.message;
    if (reason === 'limit_exceeded') {
      const role = conn.session && conn.session.role ? conn.session.role : 'this';
      const max = symbolLimit();
      return reason + ': ' + role + ' clients may watch ' + (max != null ? max : 'a limited number of') + ' symbols';
    }
    return FAIL_REASONS[reason] ? reason + ': ' + FAIL_REASONS[reason] : reason;
  }

  /* ---------- watchlist ---------- */

  function addSymbols(list) {
    const bad = [];
    const fresh = [];
    let dup = 0;
    for (const sym of list) {
      if (!SYMBOL_RE.test(sym)) { bad.push(sym); continue; }
      const row = rows.get(sym);
      if (row && row.status !== 'stale') { dup++; continue; }
      if (!row) addRow(sym);
      else setRowStatus(row, 'queued');
      if (fresh.indexOf(sym) < 0) fresh.push(sym);
    }
    if (bad.length) setNotice('Not a valid symbol: ' + bad.join(', '), 'error');
    else if (dup && !fresh.length) setNotice('Already watching ' + list.join(', '), 'info');
    else setNotice('');
    if (fresh.length && conn.phase === 'connected') subscribe(fresh);
    updateCount();
  }

  /* Subscribes everything on the watchlist that is not subscribed yet
   * (after connecting, or reconnecting). */
  function subscribeWatchlist() {
    const todo = [];
    for (const [sym, row] of rows) if (row.status === 'queued' || row.status === 'stale') todo.push(sym);
    subscribe(todo);
  }

  function subscribe(symbols) {
    for (let i = 0; i < symbols.length; i += MAX_PER_SUBSCRIBE) {
      const chunk = symbols.slice(i, i + MAX_PER_SUBSCRIBE);
      const recover = {};
      for (const sym of chunk) {
        const r = resume.get(sym);
        if (r && r.seq != null) recover[sym] = { seq: r.seq, epoch: r.epoch };
      }
      const msg = { type: 'subscribe', symbols: chunk };
      if (Object.keys(recover).length) msg.recover = recover;
      if (!request(msg)) return;
      for (const sym of chunk) {
        const row = rows.get(sym);
        if (row) setRowStatus(row, 'pending');
      }
    }
  }

  function removeSymbol(sym) {
    const row = rows.get(sym);
    if (!row) return;
    if (conn.phase === 'connected' && (row.status === 'active' || row.status === 'pending')) {
      request({ type: 'unsubscribe', symbols: [sym] });
    }
    removeRow(sym);
    updateCount();
  }

  function updateCount() {
    let active = 0;
    for (const row of rows.values()) if (row.status === 'active') active++;
    const max = symbolLimit();
    el.subCount.textContent = conn.phase === 'connected' && max != null
      ? active + ' / ' + max
      : rows.size ? String(rows.size) : '';
    for (const b of el.quickPicks.children) b.setAttribute('aria-pressed', rows.has(b.dataset.symbol) ? 'true' : 'false');
    const empty = el.tbody.querySelector('tr.empty-row');
    if (empty) empty.hidden = rows.size > 0;
    refreshTradeSymbols();
  }

  /* ---------- table ---------- */

  const CELLS = ['price', 'bid', 'ask', 'change', 'change-pct', 'volume', 'seq', 'updated'];
  const STATUS_TAGS = { queued: 'queued', pending: 'subscribing\u2026', active: '', stale: 'stale' };

  function addRow(sym) {
    const tr = document.createElement('tr');
    tr.dataset.symbol = sym;
    const symCell = document.createElement('td');
    symCell.className = 'symbol';
    const name = document.createElement('span');
    name.className = 'sym';
    name.textContent = sym;
    const tag = document.createElement('span');
    tag.className = 'tag';
    const recov = document.createElement('span');
    recov.className = 'recov';
    symCell.append(name, tag, recov);
    tr.appendChild(symCell);

    const cells = {};
    for (const c of CELLS) {
      const td = document.createElement('td');
      td.className = c + ' num';
      tr.appendChild(td);
      cells[c] = td;
    }
    const act = document.createElement('td');
    act.className = 'actions';
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.className = 'remove';
    rm.textContent = '\u00d7';
    rm.title = 'Unsubscribe ' + sym;
    rm.setAttribute('aria-label', 'Unsubscribe ' + sym);
    rm.addEventListener('click', () => removeSymbol(sym));
    act.appendChild(rm);
    tr.appendChild(act);

    el.tbody.appendChild(tr);
    const row = { sym, tr, tag, recov, cells, status: 'queued', lastPrice: null, decimals: 2, flashTimer: 0 };
    rows.set(sym, row);
    setRowStatus(row, 'queued');
    return row;
  }

  function setRowStatus(row, status) {
    row.status = status;
    row.tr.className = 'row-' + status;
    row.tag.textContent = STATUS_TAGS[status];
  }

  /* The recovered indicator: per row, and a notice for the whole answer. */
  function showRecovered(recovered) {
    if (!recovered || typeof recovered !== 'object') return;
    const got = [], missed = [];
    for (const [sym, ok] of Object.entries(recovered)) {
      (ok ? got : missed).push(sym);
      const row = rows.get(sym);
      if (!row) continue;
      row.recov.textContent = ok ? 'recovered' : 'resynced';
      row.recov.className = 'recov ' + (ok ? 'recov-ok' : 'recov-missed');
      row.recov.title = ok ? 'every tick missed while disconnected was replayed'
        : 'the missed ticks are no longer available: fresh snapshot';
    }
    setNotice('Reconnected: ' + (got.length ? 'recovered ' + got.join(', ') : '') +
      (got.length && missed.length ? '; ' : '') + (missed.length ? 'snapshot for ' + missed.join(', ') : ''),
      missed.length ? 'warn' : 'info');
  }

  function removeRow(sym) {
    const row = rows.get(sym);
    if (!row) return;
    resume.delete(sym);
    clearTimeout(row.flashTimer);
    row.tr.remove();
    rows.delete(sym);
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
    if (!u || typeof u.symbol !== 'string') return;
    const row = rows.get(u.symbol);
    if (!row) return; /* unsubscribed meanwhile */
    if (row.status !== 'active') setRowStatus(row, 'active');
    /* Delayed data (delayed_symbols): marked, so nobody trades on it as live. */
    row.tr.classList.toggle('delayed', !!u.delayed);
    row.tag.textContent = u.delayed ? 'delayed' : STATUS_TAGS.active;
    const c = row.cells;

    for (const v of [u.price, u.bid, u.ask]) {
      if (isNum(v)) row.decimals = Math.min(6, Math.max(row.decimals, decimalsOf(v)));
    }
    const px = (v) => (isNum(v) ? v.toFixed(row.decimals) : EMPTY);

    if (isNum(u.price)) {
      if (row.lastPrice !== null && u.price !== row.lastPrice) flash(row, u.price > row.lastPrice ? 'flash-up' : 'flash-down');
      row.lastPrice = u.price;
      lastPrices.set(u.symbol, u.price);
      if (portfolio.rows.has(u.symbol)) updatePortfolioValues();
      if (u.symbol === el.tradeSymbol.value) updateEstimate();
    }
    c.price.textContent = px(u.price);
    c.bid.textContent = px(u.bid);
    c.ask.textContent = px(u.ask);

    setSigned(c.change, u.change, isNum(u.change) ? signed(u.change, row.decimals) : EMPTY);
    setSigned(c['change-pct'], u.change_percent, isNum(u.change_percent) ? signed(u.change_percent, 2) + '%' : EMPTY);

    c.volume.textContent = isNum(u.volume) ? volumeFmt.format(u.volume) : EMPTY;
    c.seq.textContent = u.seq != null ? String(u.seq) : EMPTY;
    const r = resume.get(u.symbol);
    if (r && isNum(u.seq)) r.seq = u.seq;
    const ts = isNum(u.timestamp) ? u.timestamp : Date.now();
    c.updated.textContent = clockTime(ts);
    c.updated.title = new Date(ts).toString() + (u.snapshot ? ' (snapshot)' : '') + (u.delayed ? ' (delayed)' : '');
  }

  function setSigned(td, v, text) {
    td.textContent = text;
    td.classList.toggle('pos', isNum(v) && v >= 0);
    td.classList.toggle('neg', isNum(v) && v < 0);
  }

  /* ---------- trading ---------- */

  function canTrade() {
    const s = conn.session;
    return conn.phase === 'connected' && !!s && TRADING_ROLES.indexOf(s.role) >= 0;
  }

  /* Shows the Trade and Portfolio panels only to roles that may trade;
   * they stay visible (read-only) after a disconnect. */
  function updateTradeUI() {
    if (!el.tradePanel) return;
    const can = canTrade();
    if (can) {
      el.tradePanel.hidden = false;
      el.portfolioPanel.hidden = false;
    } else if (conn.phase === 'connected' && conn.session) {
      el.tradePanel.hidden = true; /* connected with a role that may not trade */
      el.portfolioPanel.hidden = true;
    }
    const hasSymbol = !!el.tradeSymbol.value;
    el.placeOrder.disabled = !can || !hasSymbol;
    el.placeOrder.title = !can ? 'Connect with a trader token to place orders'
      : !hasSymbol ? 'Add a symbol to the watchlist first' : '';
    el.tradeLimit.disabled = el.tradeType.value !== 'limit';
    el.tradeLimit.placeholder = el.tradeType.value === 'limit' ? 'price' : 'market';
    el.tradeForm.classList.toggle('selling', el.sideSell.checked);
  }

  /* After connected / authenticated: subscribe to the portfolio once per socket. */
  function startTrading() {
    updateTradeUI();
    if (!canTrade() || conn.portfolioSent) return;
    if (request({ type: 'portfolio_subscribe' })) conn.portfolioSent = true;
  }

  /* The symbol select follows the watchlist. */
  function refreshTradeSymbols() {
    if (!el.tradeSymbol) return;
    const want = Array.from(rows.keys());
    const have = Array.from(el.tradeSymbol.options, (o) => o.value).filter(Boolean);
    if (el.tradeSymbol.options.length && want.length === have.length && want.every((s, i) => s === have[i])) return;
    const keep = el.tradeSymbol.value;
    el.tradeSymbol.textContent = '';
    if (!want.length) {
      const opt = document.createElement('option');
      opt.value = '';
      opt.textContent = 'add a symbol first';
      el.tradeSymbol.appendChild(opt);
    }
    for (const sym of want) {
      const opt = document.createElement('option');
      opt.value = sym;
      opt.textContent = sym;
      el.tradeSymbol.appendChild(opt);
    }
    el.tradeSymbol.value = want.indexOf(keep) >= 0 ? keep : (want[0] || '');
    el.tradeSymbol.disabled = !want.length;
    updateTradeUI();
    updateEstimate();
  }

  function money(v) { return isNum(v) ? moneyFmt.format(v) : EMPTY; }

  function updateEstimate() {
    const sym = el.tradeSymbol.value;
    const qty = Number(el.tradeQty.value);
    const limit = el.tradeType.value === 'limit';
    const px = limit ? Number(el.tradeLimit.value) : lastPrices.get(sym);
    if (!sym || !(qty > 0) || !(px > 0)) {
      el.tradeEstimate.textContent = '';
      return;
    }
    el.tradeEstimate.textContent = (el.sideSell.checked ? 'Proceeds' : 'Cost') + ' \u2248 ' + qtyFmt.format(qty) +
      ' \u00d7 ' + px + ' = ' + money(qty * px) + (limit ? ' at the limit' : ' at the last price');
  }

  function placeOrder() {
    if (!canTrade()) {
      setNotice('Connect with a trader token to place orders.', 'error');
      return;
    }
    const symbol = el.tradeSymbol.value;
    const quantity = Number(el.tradeQty.value);
    const orderType = el.tradeType.value === 'limit' ? 'limit' : 'market';
    const side = el.sideSell.checked ? 'sell' : 'buy';
    if (!symbol) { setNotice('Add a symbol to the watchlist first.', 'error'); return; }
    if (!(quantity > 0)) { setNotice('Quantity must be a number above 0.', 'error'); el.tradeQty.focus(); return; }
    const msg = { type: 'trade', symbol, side, quantity, order_type: orderType };
    if (orderType === 'limit') {
      const lp = Number(el.tradeLimit.value);
      if (!(lp > 0)) { setNotice('A limit order needs a limit price above 0.', 'error'); el.tradeLimit.focus(); return; }
      msg.limit_price = lp;
    }
    const id = request(msg);
    if (!id) return;
    addOrder({ requestId: id, orderId: null, symbol, side, quantity, orderType, limit: msg.limit_price,
               status: 'sent', price: null, reason: '', time: Date.now() });
  }

  function addOrder(o) {
    const empty = el.ordersBody.querySelector('tr.empty-row');
    if (empty) empty.hidden = true;
    const tr = document.createElement('tr');
    const cell = (cls, text) => {
      const td = document.createElement('td');
      td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
      return td;
    };
    cell('time', clockTime(o.time));
    o.idCell = cell('order-id', o.orderId || '#' + (o.requestId || '?'));
    cell('side ' + o.side, o.side);
    cell('qty num', qtyFmt.format(o.quantity));
    cell('sym', o.symbol);
    cell('type', o.orderType + (o.orderType === 'limit' && isNum(o.limit) ? ' @ ' + o.limit : ''));
    o.priceCell = cell('price num', EMPTY);
    const st = cell('status', '');
    o.badge = document.createElement('span');
    o.badge.className = 'order-status';
    o.reasonEl = document.createElement('span');
    o.reasonEl.className = 'reason';
    st.append(o.badge, o.reasonEl);
    o.tr = tr;
    el.ordersBody.insertBefore(tr, el.ordersBody.querySelector('tr:not(.empty-row)'));
    orders.list.push(o);
    if (o.requestId) orders.byRequest.set(o.requestId, o);
    if (o.orderId) {
      orders.byId.set(o.orderId, o);
      tr.dataset.orderId = o.orderId;
    }
    while (orders.list.length > ORDERS_MAX) {
      const old = orders.list.shift();
      old.tr.remove();
      orders.byRequest.delete(old.requestId);
      orders.byId.delete(old.orderId);
    }
    setOrderStatus(o, o.status, o.reason);
    el.ordersCount.textContent = String(orders.list.length);
    return o;
  }

  function setOrderStatus(o, status, reason) {
    o.status = status;
    o.reason = reason || '';
    o.tr.className = 'status-' + status;
    o.tr.dataset.status = status;
    o.badge.textContent = status;
    o.reasonEl.textContent = o.reason;
    o.reasonEl.hidden = !o.reason;
  }

  function orderAccepted(requestId, orderId) {
    const o = requestId != null ? orders.byRequest.get(requestId) : undefined;
    if (!o) return;
    o.orderId = orderId;
    o.idCell.textContent = orderId;
    o.tr.dataset.orderId = orderId;
    orders.byId.set(orderId, o);
    if (o.status === 'sent') setOrderStatus(o, 'accepted');
  }

  function orderRejected(requestId, reason, text) {
    const o = requestId != null ? orders.byRequest.get(requestId) : undefined;
    if (!o) return;
    setOrderStatus(o, 'rejected', reason.replace(/_/g, ' '));
    if (text) o.reasonEl.title = text;
    setNotice('Order rejected: ' + reason + (text ? ' \u2014 ' + text : ''), 'error');
  }

  function orderFilled(f) {
    let o = orders.byId.get(f.order_id);
    if (!o) { /* placed from another session of this user */
      o = addOrder({ requestId: null, orderId: f.order_id, symbol: f.symbol, side: f.side === 'sell' ? 'sell' : 'buy',
                     quantity: f.quantity, orderType: 'other session', status: 'filled', price: null, reason: '',
                     time: isNum(f.timestamp) ? f.timestamp : Date.now() });
    }
    o.price = f.price;
    o.priceCell.textContent = isNum(f.price) ? money(f.price) : EMPTY;
    setOrderStatus(o, 'filled');
  }

  /* portfolio_update: snapshots and fills carry cash and positions; other
   * user events are only logged. */
  function applyPortfolio(ev) {
    if (!ev || typeof ev !== 'object') return;
    if (ev.kind === 'order_cancelled' && ev.order_id) {
      const o = orders.byId.get(ev.order_id);
      if (o) setOrderStatus(o, 'cancelled', (ev.reason || '').replace(/_/g, ' '));
    }
    if (!isNum(ev.cash) || !Array.isArray(ev.positions)) return;
    portfolio.cash = ev.cash;
    portfolio.positions = ev.positions.filter((p) => p && typeof p.symbol === 'string' && isNum(p.quantity));
    el.portfolio.classList.remove('stale');
    renderPortfolio();
  }

  function renderPortfolio() {
    const body = el.positionsBody;
    for (const r of portfolio.rows.values()) r.tr.remove();
    portfolio.rows.clear();
    const empty = body.querySelector('tr.empty-row');
    if (empty) empty.hidden = portfolio.positions.length > 0;
    for (const p of portfolio.positions) {
      const tr = document.createElement('tr');
      tr.dataset.symbol = p.symbol;
      const cells = {};
      for (const [cls, text] of [['sym', p.symbol], ['qty num', qtyFmt.format(p.quantity)],
        ['avg num', money(p.avg_price)], ['last num', EMPTY], ['value num', EMPTY], ['pnl num', EMPTY]]) {
        const td = document.createElement('td');
        td.className = cls;
        td.textContent = text;
        tr.appendChild(td);
        cells[cls.split(' ')[0]] = td;
      }
      body.appendChild(tr);
      portfolio.rows.set(p.symbol, { tr, cells, pos: p });
    }
    el.portfolio.dataset.state = portfolio.positions.length ? 'positions' : 'cash';
    updatePortfolioValues();
  }

  function updatePortfolioValues() {
    let value = 0;
    for (const r of portfolio.rows.values()) {
      const p = r.pos;
      const live = lastPrices.get(p.symbol);
      const px = isNum(live) ? live : p.avg_price;
      const mv = p.quantity * px;
      value += mv;
      r.cells.last.textContent = isNum(live) ? money(live) : EMPTY;
      r.cells.value.textContent = money(mv);
      r.cells.value.title = isNum(live) ? 'at the live price' : 'at the average price (no live price)';
      const pnl = isNum(live) && isNum(p.avg_price) ? (live - p.avg_price) * p.quantity : null;
      r.cells.pnl.textContent = pnl === null ? EMPTY : signed(pnl, 2);
      r.cells.pnl.classList.toggle('pos', pnl !== null && pnl >= 0);
      r.cells.pnl.classList.toggle('neg', pnl !== null && pnl < 0);
    }
    el.cash.textContent = money(portfolio.cash);
    el.positionsValue.textContent = isNum(portfolio.cash) ? money(value) : EMPTY;
    el.equity.textContent = isNum(portfolio.cash) ? money(portfolio.cash + value) : EMPTY;
  }

  /* ---------- wiring ---------- */

  function init() {
    el.url.value = defaultUrl();
    el.token.value = '';

    for (const [sym, name] of SUGGESTIONS) {
      const opt = document.createElement('option');
      opt.value = sym;
      opt.label = name;
      el.datalist.appendChild(opt);
    }
    for (const sym of QUICK_PICKS) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'quick-pick';
      b.dataset.symbol = sym;
      b.textContent = sym;
      b.title = 'Watch / stop watching ' + sym;
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => (rows.has(sym) ? removeSymbol(sym) : addSymbols([sym])));
      el.quickPicks.appendChild(b);
    }

    el.form.addEventListener('submit', (e) => { e.preventDefault(); connect(false); });
    el.disconnect.addEventListener('click', disconnect);
    el.authenticate.addEventListener('click', () => {
      const token = cleanToken(el.token.value);
      if (!token) { setNotice('Paste a token first.', 'error'); return; }
      request({ type: 'authenticate', token });
    });
    el.symbolForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const list = parseSymbols(el.symbolInput.value);
      if (!list.length) return;
      addSymbols(list);
      el.symbolInput.value = '';
      el.symbolInput.focus();
    });
    el.clearLog.addEventListener('click', () => { el.log.textContent = ''; });
    el.tradeForm.addEventListener('submit', (e) => { e.preventDefault(); placeOrder(); });
    for (const input of [el.sideBuy, el.sideSell, el.tradeType, el.tradeSymbol]) {
      input.addEventListener('change', () => { updateTradeUI(); updateEstimate(); });
    }
    for (const input of [el.tradeQty, el.tradeLimit]) input.addEventListener('input', updateEstimate);

    setPhase('disconnected');
    updateCount();

    const params = new URLSearchParams(location.search);
    const initial = parseSymbols(params.get('symbols'));
    if (initial.length) addSymbols(initial);
    if (/^(1|true|yes|on)$/i.test(params.get('autoconnect') || '')) connect(true);
  }

  init();
}());
