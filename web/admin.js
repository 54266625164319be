// admin.js - the admin page (web/admin.html): this node's connections, top
// symbols by subscribers, blocked IPs with unblock, block and broadcast,
// through the admin HTTP API with an admin token (docs/protocol.md,
// section 14). The token stays in this tab (sessionStorage) and is never
// put in a URL.
'use strict';

const $ = (id) => document.getElementById(id);
const TOP_N = 10;
const REFRESH_MS = 5000;
let timer = null;

function token() { return sessionStorage.getItem('tickgate-admin-token') || ''; }

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = 'badge ' + cls;
}

async function call(method, path, body) {
  const opts = { method, headers: { Authorization: 'Bearer ' + token() } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const why = data && (data.message || data.error) ? (data.message || data.error) : r.statusText;
    throw new Error(r.status + ' ' + why);
  }
  return data;
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fill(tbodySel, rows, render) {
  const tb = document.querySelector(tbodySel + ' tbody');
  tb.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement('tr');
    render(tr, row);
    tb.appendChild(tr);
  }
}

function renderConnections(list) {
  $('conn-count').textContent = String(list.length);
  fill('#connections', list, (tr, c) => {
    tr.dataset.id = c.id;
    cell(tr, c.id);
    cell(tr, c.user === null ? '(anonymous)' : c.user);
    cell(tr, c.role);
    cell(tr, c.ip);
    cell(tr, new Date(c.connected_at).toISOString().slice(11, 19));
    cell(tr, String(c.subscriptions));
    cell(tr, c.threat);
  });
  const counts = new Map();
  for (const c of list)
    for (const s of c.symbols || []) counts.set(s, (counts.get(s) || 0) + 1);
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP_N);
  fill('#top-symbols', top, (tr, [sym, n]) => {
    tr.dataset.symbol = sym;
    cell(tr, sym);
    cell(tr, String(n), 'subscribers');
  });
}

function renderBlocks(data) {
  $('block-count').textContent = String(data.blocks.length) + (data.truncated ? '+' : '');
  fill('#blocks', data.blocks, (tr, b) => {
    tr.dataset.ip = b.ip;
    cell(tr, b.ip);
    cell(tr, b.until === null ? 'until unblocked' : new Date(b.until * 1000).toISOString().replace('.000Z', 'Z'));
    cell(tr, b.kept ? 'yes' : 'no');
    const td = cell(tr, '');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'small unblock';
    btn.textContent = 'Unblock';
    btn.addEventListener('click', () => act(() => call('POST', '/api/admin/unblock_ip', { ip: b.ip })));
    td.appendChild(btn);
  });
}

async function refresh() {
  if (!token()) return;
  try {
    const [conns, blocks] = await Promise.all([call('GET', '/api/admin/connections'),
                                               call('GET', '/api/admin/blocks')]);
    renderConnections(conns.connections);
    renderBlocks(blocks);
    $('error').textContent = '';
    setStatus('connected', 'state-connected');
  } catch (e) {
    $('error').textContent = e.message;
    setStatus('refused', 'state-disconnected');
  }
}

async function act(fn) {
  try {
    const r = await fn();
    await refresh();
    return r;
  } catch (e) {
    $('error').textContent = e.message;
    return null;
  }
}

function start() {
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
  refresh();
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem('tickgate-admin-token', $('token').value.trim());
  start();
});
$('refresh').addEventListener('click', refresh);
$('broadcast-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { message: $('broadcast-message').value };
  const roles = $('broadcast-roles').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (roles.length) body.roles = roles;
  const r = await act(() => call('POST', '/api/admin/broadcast', body));
  if (r) $('broadcast-result').textContent = 'sent to ' + r.recipients + ' client(s)';
});
$('block-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const body = { ip: $('block-ip').value.trim() };
  const d = parseInt($('block-duration').value, 10);
  if (d > 0) body.duration_s = d;
  act(() => call('POST', '/api/admin/block_ip', body));
});
if (token()) {
  $('token').value = token();
  start();
}
