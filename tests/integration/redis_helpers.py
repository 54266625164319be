"""Helpers for the Redis-engine integration tests (test_redis.py).

- RedisServer: a private `redis-server` (Debian package, /usr/bin/redis-server)
  on a free loopback port, no persistence (--save '' --appendonly no). It is
  never the system Redis and never port 6379. kill() sends SIGKILL,
  restart() starts it again on the same port.
- redis_server: fixture yielding a started RedisServer, killed at teardown.
- rgw: fixture factory starting tickgate gateways wired to a RedisServer
  (JWT secret, simulator off, own audit file, high message rate) and waiting
  until /health reports checks.redis == "up".
- BoundWS (from wsraw): a raw WebSocket bound to a source address
  (e.g. 127.0.0.2) before it connects.
- small helpers: node id of a gateway, health, admin/API requests.

Test modules import the fixtures by name (`from redis_helpers import ...`),
which registers them for that module."""
import os
import re
import signal
import socket
import subprocess
import threading

import pytest
import redis as redis_py

import wsraw
from conftest import SECRET_FLAG, Gateway, JsonWS, api, child_env, http_json, tickgate_bin, wait_until  # noqa: F401 (api re-exported)
from wsraw import BoundWS

REDIS_BIN = os.environ.get("REDIS_SERVER_BIN", "/usr/bin/redis-server")
START_TIMEOUT = 10.0


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago (never 6379)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port != 6379:
            return port


class RedisServer:
    """One private redis-server process on 127.0.0.1:port."""

    def __init__(self, workdir, port=None, extra_args=()):
        self.workdir = str(workdir)
        self.extra_args = list(extra_args)  # e.g. --replicaof
        self.ready_line = b"Ready to accept connections"
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc = None
        self.log_path = os.path.join(self.workdir, "redis-%d.log" % self.port)
        self._log = None
        self._pump = None

    @property
    def url(self):
        return "redis://%s:%d/0" % (self.host, self.port)

    def client(self, **kw):
        kw.setdefault("socket_timeout", 2.0)
        kw.setdefault("socket_connect_timeout", 2.0)
        return redis_py.Redis(host=self.host, port=self.port, db=0, decode_responses=True, **kw)

    def command(self):
        return [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", self.workdir, "--protected-mode", "no"] + self.extra_args

    def start(self):
        if not os.access(REDIS_BIN, os.X_OK):
            pytest.skip("redis-server not installed at %s" % REDIS_BIN)
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        self._log = open(self.log_path, "ab")
        args = self.command()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, start_new_session=True)
        # Await redis-server's own "Ready to accept connections" line (or its
        # exit): a thread copies its output to the log and signals the event.
        ready, settled = [False], threading.Event()

        def pump(out, log):
            for line in out:
                log.write(line)
                log.flush()
                if not ready[0] and self.ready_line in line:
                    ready[0] = True
                    settled.set()
            settled.set()  # EOF: it exited

        self._pump = threading.Thread(target=pump, args=(self.proc.stdout, self._log), daemon=True)
        self._pump.start()
        if not settled.wait(START_TIMEOUT):
            self.kill()
            pytest.fail("redis-server on port %d did not report ready within %.0f s\n%s"
                        % (self.port, START_TIMEOUT, self.log_tail()), pytrace=False)
        if not ready[0]:
            self.kill()
            pytest.fail("redis-server exited with %s before it was ready\n%s"
                        % (self.proc.returncode, self.log_tail()), pytrace=False)
        c = self.client()
        try:
            assert c.ping(), "redis-server reported ready but does not answer PING"
        finally:
            c.close()
        return self

    def kill(self):
        """SIGKILL (no shutdown, no save) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        if self._pump is not None:
            self._pump.join(timeout=10)  # its output ends with the process
            self._pump = None
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self):
        """SIGKILL if running, then start again on the same port."""
        self.kill()
        return self.start()

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""


@pytest.fixture
def redis_server(tmp_path):
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture
def rdb(redis_server):
    """The test's own client of redis_server (decoded strings)."""
    c = redis_server.client()
    yield c
    c.close()


def health(gw):
    r = http_json(gw, "GET", "/health")
    assert r.status in (200, 503), r
    return r.json()


def wait_redis_up(gw, timeout=10.0):
    return wait_until(lambda: (lambda h: h if h["checks"]["redis"] == "up" else None)(health(gw)), timeout,
                      "checks.redis == 'up' on port %d" % gw.port, interval=0.02)


def gateway_args(redis_srv, audit_path, *flags):
    return [SECRET_FLAG, "--feed.simulator=false", "--redis.url=" + redis_srv.url, "--audit.path=" + str(audit_path),
            "--security.blocks_file=%s.blocks" % audit_path, "--limits.max_messages_per_minute=100000"] + list(flags)


@pytest.fixture
def rgw(gateway, tmp_path):
    """Factory: rgw(redis_srv, *flags, wait_up=True) starts a gateway on
    redis_srv (see gateway_args) through conftest's `gateway` fixture (so it
    is SIGTERMed at teardown and must exit 0), then waits for redis up."""
    n = [0]

    def start(redis_srv, *flags, wait_up=True):
        n[0] += 1
        gw = gateway(*gateway_args(redis_srv, tmp_path / ("audit-%d.log" % n[0]), *flags))
        if wait_up:
            wait_redis_up(gw)
        return gw

    return start


@pytest.fixture
def unmanaged_gw(tmp_path):
    """Factory for gateways this test stops itself (e.g. with SIGKILL):
    same flags as rgw but without the `gateway` fixture's exit-0 check. Any
    still running at teardown are killed."""
    started = []

    def start(redis_srv, *flags, wait_up=True):
        args = [tickgate_bin(), "--server.listen=127.0.0.1:0"] + gateway_args(
            redis_srv, tmp_path / ("audit-unmanaged-%d.log" % len(started)), *flags)
        gw = Gateway(args, child_env())
        started.append(gw)
        gw.wait_listening()
        if wait_up:
            wait_redis_up(gw)
        return gw

    yield start
    for gw in started:
        gw.kill()


def node_id(rdb, gw, prefix="websocket:", timeout=10.0):
    """The node id a gateway registered in P'nodes' (it embeds the pid)."""
    pat = re.compile(r".*-%d-[0-9a-f]{8}$" % gw.pid)

    def find():
        for n in rdb.smembers(prefix + "nodes"):
            if pat.match(n):
                return n
        return None

    return wait_until(find, timeout, "node id of pid %d in %snodes" % (gw.pid, prefix))


@pytest.fixture
def rws(gateway):
    """JSON WebSocket clients on /ws (optionally from a bound source
    address), closed at teardown before the gateways stop.
    rws.open(gw, token=None, src=None) -> JsonWS after 'connected';
    rws.handshake(gw, token=None, src=None) -> the upgrade Response, and the
    raw connection in .conn (kept open when it was a 101)."""
    opened = []

    def _raw(gw, src):
        c = BoundWS(gw.host, gw.port, src) if src else wsraw.WSRaw(gw.host, gw.port)
        opened.append(c)
        return c

    def _h(token):
        return {"Authorization": "Bearer " + token} if token else {}

    class Factory:
        @staticmethod
        def open(gw, token=None, src=None):
            raw = _raw(gw, src)
            raw.open("/ws", _h(token))
            ws = JsonWS(raw)
            ws.hello = ws.expect("connected")
            return ws

        @staticmethod
        def handshake(gw, token=None, src=None):
            raw = _raw(gw, src)
            resp = raw.handshake("/ws", _h(token))
            resp.conn = raw
            if resp.status != 101:
                raw.close()
            return resp

    yield Factory
    for c in opened:
        c.close()


class GateProxy:
    """A TCP proxy in front of a RedisServer that can hold Redis's replies
    on one connection: arm(b"XREVRANGE") holds, from the moment a node sends
    that command, everything Redis answers on that connection until
    release(). The pub/sub connection (the one that sent SUBSCRIBE) keeps
    flowing; unread(conn) is the bytes a node has not read yet from it
    (/proc/net/tcp rx_queue of the node's socket), so a test knows when
    the node took what the proxy passed on."""

    class Conn:
        def __init__(self, node_sock):
            self.node = node_sock
            self.node_port = node_sock.getpeername()[1]
            self.held = None          # bytearray while holding
            self.passed = bytearray() # what went to the node (tests are small)
            self.sent = bytearray()   # what the node sent
            self.lock = threading.Lock()

    def __init__(self, redis_srv):
        self.target = (redis_srv.host, redis_srv.port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.conns, self.trigger, self.closed = [], None, False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            r = socket.create_connection(self.target)
            c = GateProxy.Conn(s)
            self.conns.append(c)
            threading.Thread(target=self._up, args=(c, r), daemon=True).start()
            threading.Thread(target=self._down, args=(c, r), daemon=True).start()

    def _up(self, c, r):  # node -> Redis
        while True:
            try:
                d = c.node.recv(65536)
            except OSError:
                d = b""
            if not d:
                r.close()
                return
            with c.lock:
                c.sent += d
                if self.trigger and self.trigger in d and c.held is None:
                    c.held = bytearray()  # before Redis can answer it
                    self.trigger = None
            r.sendall(d)

    def _down(self, c, r):  # Redis -> node
        while True:
            try:
                d = r.recv(65536)
            except OSError:
                d = b""
            if not d:
                c.node.close()
                return
            with c.lock:
                if c.held is not None:
                    c.held += d
                    continue
                c.passed += d
            c.node.sendall(d)

    def arm(self, command):
        self.trigger = command

    def holding(self):
        return next((c for c in self.conns if c.held is not None), None)

    def pubsub(self):
        return next((c for c in self.conns if b"SUBSCRIBE" in c.sent), None)

    def release(self):
        for c in self.conns:
            with c.lock:
                d, c.held = c.held, None
                if d:
                    c.passed += d
                    c.node.sendall(d)

    def unread(self, c):
        """Bytes waiting in the node's socket of c (its rx_queue)."""
        local = "0100007F:%04X" % c.node_port
        remote = "0100007F:%04X" % self.port
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if p[1] == local and p[2] == remote:
                    return int(p[4].split(":")[1], 16)
        return 0

    def close(self):
        self.closed = True
        self.lsock.close()
        self.release()


class Balancer:
    """TCP passed through to `backend` (a port) while it is set; a
    connection arriving while it is None is closed at once."""

    def __init__(self):
        self.backend = None
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            if self.backend is None:
                s.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.backend))
            except OSError:
                s.close()
                continue
            self.socks += [s, up]
            threading.Thread(target=self._pump, args=(s, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, s), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        while True:
            try:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.lsock.close()
        for s in self.socks:
            s.close()


class SteadyPublisher:
    """Publishes ticks of sym through a publisher's JsonWS, one message of
    one tick about every `pace` s, in a thread, from start() until stop().
    `count` is the number published; with Redis and a symbol no one else
    publishes, it is also the last seq."""

    def __init__(self, ws, sym, pace):
        self.ws, self.sym, self.pace = ws, sym, pace
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            r = self.ws.publish([{"symbol": self.sym, "price": 100 + (self.count % 50) / 100}])
            assert r.get("type") == "published", r
            self.count += 1
            self._stop.wait(self.pace)

    def start(self):
        self._t.start()

    def stop(self):
        self._stop.set()
        if self._t.is_alive():
            self._t.join(10)
