/* tickgate demo page: connect to the gateway's WebSocket, subscribe to
 * symbols and watch their prices tick. Plain ES2017, no dependencies.
 * Wire contract: docs/protocol.md (shared spec PROTOCOL.md, sections 2, 4, 5).
 *
 * Query parameters: ?symbols=AAPL,MSFT puts those symbols on the watchlist;
 * &autoconnect=1 connects anonymously at once (they are subscribed as soon
 * as the server's "connected" frame arrives). */
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
    forbidden: 'your role may not subscribe'
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'), form: $('connect-form'), url: $('ws-url'), token: $('token'),
    connect: $('connect'), disconnect: $('disconnect'), authenticate: $('authenticate'),
    session: $('session'), role: $('role'), userId: $('user-id'), clientId: $('client-id'),
    limit: $('limit'), closeInfo: $('close-info'),
    symbolForm: $('symbol-form'), symbolInput: $('symbol-input'), addSymbol: $('add-symbol'),
    datalist: $('symbol-list'), quickPicks: $('quick-picks'), notice: $('notice'),
    subCount: $('sub-count'), tbody: $('prices-body'), log: $('log'), clearLog: $('clear-log')
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
    userClosed: false    /* Disconnect was pressed for the current socket */
  };

  /* Watchlist: symbol -> row. status: queued (not sent yet), pending (sent,
   * no reply yet), active (confirmed), stale (connection gone). */
  const rows = new Map();

  const volumeFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
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
        break;
      case 'subscription_confirmed':
        for (const sym of msg.symbols || []) {
          const row = rows.get(sym); /* none if removed while the request was in flight */
          if (row) setRowStatus(row, 'active');
        }
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
        break;
      case 'token_expiring':
        setNotice('Your token expires at ' + (isNum(msg.expires_at) ? clockTime(msg.expires_at) : 'once') +
          ' \u2014 paste a fresh one and press \u201cSend token\u201d to stay connected.', 'warn');
        break;
      case 'broadcast':
        setNotice('Broadcast' + (msg.from ? ' from ' + msg.from : '') + ': ' + msg.message, 'warn');
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
      if (!request({ type: 'subscribe', symbols: chunk })) return;
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
    symCell.append(name, tag);
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
    const row = { sym, tr, tag, cells, status: 'queued', lastPrice: null, decimals: 2, flashTimer: 0 };
    rows.set(sym, row);
    setRowStatus(row, 'queued');
    return row;
  }

  function setRowStatus(row, status) {
    row.status = status;
    row.tr.className = 'row-' + status;
    row.tag.textContent = STATUS_TAGS[status];
  }

  function removeRow(sym) {
    const row = rows.get(sym);
    if (!row) return;
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
    const c = row.cells;

    for (const v of [u.price, u.bid, u.ask]) {
      if (isNum(v)) row.decimals = Math.min(6, Math.max(row.decimals, decimalsOf(v)));
    }
    const px = (v) => (isNum(v) ? v.toFixed(row.decimals) : EMPTY);

    if (isNum(u.price)) {
      if (row.lastPrice !== null && u.price !== row.lastPrice) flash(row, u.price > row.lastPrice ? 'flash-up' : 'flash-down');
      row.lastPrice = u.price;
    }
    c.price.textContent = px(u.price);
    c.bid.textContent = px(u.bid);
    c.ask.textContent = px(u.ask);

    setSigned(c.change, u.change, isNum(u.change) ? signed(u.change, row.decimals) : EMPTY);
    setSigned(c['change-pct'], u.change_percent, isNum(u.change_percent) ? signed(u.change_percent, 2) + '%' : EMPTY);

    c.volume.textContent = isNum(u.volume) ? volumeFmt.format(u.volume) : EMPTY;
    c.seq.textContent = u.seq != null ? String(u.seq) : EMPTY;
    const ts = isNum(u.timestamp) ? u.timestamp : Date.now();
    c.updated.textContent = clockTime(ts);
    c.updated.title = new Date(ts).toString() + (u.snapshot ? ' (snapshot)' : '');
  }

  function setSigned(td, v, text) {
    td.textContent = text;
    td.classList.toggle('pos', isNum(v) && v >= 0);
    td.classList.toggle('neg', isNum(v) && v < 0);
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

    setPhase('disconnected');
    updateCount();

    const params = new URLSearchParams(location.search);
    const initial = parseSymbols(params.get('symbols'));
    if (initial.length) addSymbols(initial);
    if (/^(1|true|yes|on)$/i.test(params.get('autoconnect') || '')) connect(true);
  }

  init();
}());
