/* Real processes for the integration tests: tickgate (TICKGATE_BIN, default
 * the repository's build/tickgate) on a free or given port, redis-server on
 * a free port, HS256 tokens. Every wait reads a process's output or a
 * socket; nothing sleeps. */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = process.env.TICKGATE_BIN || join(ROOT, 'build', 'tickgate');
export const REDIS_BIN = process.env.REDIS_SERVER_BIN || '/usr/bin/redis-server';
export const SECRET = 'tickgate-integration-secret-0123456789abcdef';
const START_MS = 10000;
const dir = mkdtempSync(join(tmpdir(), 'tickgate-js-'));
let n = 0;

export function cleanup() { rmSync(dir, { recursive: true, force: true }); }

export function mint(sub, role, claims = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub, iat: now, exp: now + 3600, ...(role ? { role } : {}), ...claims });
  return body + '.' + createHmac('sha256', SECRET).update(body).digest('base64url');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/* Spawns args and resolves once a line of its output matches re (the
 * process is killed and the promise rejected if it exits or START_MS pass). */
function startUntil(bin, args, re, what) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(what + ' not ready:\n' + out)); }, START_MS);
    const onData = (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(timer); resolve({ proc, m, output: () => out }); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (d) => { out += d; });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(what + ' exited with ' + code + ':\n' + out)); });
  });
}

/* A running tickgate: .port, .url (ws://…/ws), stop() (SIGTERM, must exit
 * 0), kill() (SIGKILL). */
export async function tickgate(flags = [], { port = 0 } = {}) {
  const k = n++;
  const args = ['--server.listen=127.0.0.1:' + port, '--auth.jwt_secret=' + SECRET, '--feed.simulator=false',
    '--limits.max_messages_per_minute=100000', '--audit.path=' + join(dir, 'audit-' + k + '.log'),
    '--security.blocks_file=' + join(dir, 'blocks-' + k + '.state'), ...flags];
  const { proc, m, output } = await startUntil(BIN, args, /tickgate listening on 127\.0\.0\.1:(\d+)/, 'tickgate');
  const gw = {
    proc, port: Number(m[1]), output,
    get url() { return 'ws://127.0.0.1:' + gw.port + '/ws'; },
    exited: new Promise((resolve) => proc.once('exit', (code, sig) => resolve(sig || code))),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return gw.exited;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return gw.exited;
    }
  };
  proc.stdout.resume();
  return gw;
}

export async function redis() {
  const port = await freePort();
  const { proc } = await startUntil(REDIS_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], /Ready to accept connections/, 'redis-server');
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  return { port, url: 'redis://127.0.0.1:' + port + '/0', async kill() { proc.kill('SIGKILL'); await exited; } };
}

/* Resolves with the first value of emitter's `event` for which pred holds. */
export function next(emitter, event, pred = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { emitter.off(event, f); reject(new Error('no ' + event + ' within ' + ms + ' ms')); }, ms);
    const f = (v) => { if (pred(v)) { clearTimeout(t); emitter.off(event, f); resolve(v); } };
    emitter.on(event, f);
  });
}

/* Polls fn() (async) until it returns a truthy value, at most ms. */
export async function until(fn, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(what + ' not reached within ' + ms + ' ms');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const ready = (gw) => until(async () => {
  try { return (await fetch('http://127.0.0.1:' + gw.port + '/ready')).status === 200; } catch (e) { return false; }
}, 'GET /ready 200 on port ' + gw.port);

/* A load balancer in front of one node: TCP passed through to the backend
 * port while one is set, connections refused (closed at once) otherwise.
 * The test sets the backend once the node's /ready answers 200, as a load
 * balancer does (docs/operations.md). */
export function balancer() {
  return new Promise((resolve) => {
    const lb = { backend: 0, conns: new Set() };
    const srv = createServer((sock) => {
      if (!lb.backend) return sock.destroy();
      const up = connect(lb.backend, '127.0.0.1');
      lb.conns.add(sock);
      const end = () => { sock.destroy(); up.destroy(); lb.conns.delete(sock); };
      sock.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
      sock.pipe(up).pipe(sock);
    });
    lb.close = () => new Promise((r) => { for (const s of lb.conns) s.destroy(); srv.close(r); });
    srv.listen(0, '127.0.0.1', () => {
      lb.port = srv.address().port;
      lb.url = 'ws://127.0.0.1:' + lb.port + '/ws';
      resolve(lb);
    });
  });
}
