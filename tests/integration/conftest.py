"""Fixtures for tickgate's integration tests: start the real binary on a free
port, talk to it over sockets, stop it with SIGTERM and insist it exits 0.

TICKGATE_BIN names the binary (default: build/tickgate of this checkout)."""
import os
import tempfile
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wsraw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
LISTEN_RE = re.compile(r"tickgate listening on (\S+):(\d+)")


def tickgate_bin():
    path = os.environ.get("TICKGATE_BIN") or os.path.join(ROOT, "build", "tickgate")
    if not os.access(path, os.X_OK):
        pytest.fail("tickgate binary not found at %s (build it with make, or set TICKGATE_BIN)" % path,
                    pytrace=False)
    return path


def child_env(extra=None):
    """The test runner's environment without any TICKGATE_* variable (the
    server rejects unknown ones), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    env.update(extra or {})
    return env


class Gateway:
    """One running tickgate process."""

    def __init__(self, args, env):
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=ROOT, start_new_session=True)
        self.pid = self.proc.pid
        self.host = self.port = None
        self.returncode = None
        self.killed = False
        self.start_failed = False  # already reported by wait_listening
        self._stdout, self._stderr = [], []
        self._lines = queue.Queue()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._stdout, self._lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr, None), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink, lines):
        # Keep draining the pipe for the whole life of the process so that a
        # chatty server never blocks on a full pipe.
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            sink.append(line)
            if lines is not None:
                lines.put(line)
        if lines is not None:
            lines.put(None)

    @property
    def stdout(self):
        return "".join(self._stdout)

    @property
    def stderr(self):
        return "".join(self._stderr)

    def output(self):
        return "--- stdout ---\n%s--- stderr ---\n%s" % (self.stdout[-4000:], self.stderr[-4000:])

    def wait_listening(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.start_failed = True
                self.kill()
                pytest.fail("tickgate printed no 'tickgate listening on HOST:PORT' within %.0f s\n%s"
                            % (timeout, self.output()), pytrace=False)
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.start_failed = True
                rc = self.proc.wait(timeout=STOP_TIMEOUT)
                self.returncode = rc
                self._join()
                pytest.fail("tickgate exited (code %s) before listening\n%s" % (rc, self.output()), pytrace=False)
            m = LISTEN_RE.search(line)
            if m:
                host = m.group(1)
                if host.startswith("[") and host.endswith("]"):
                    host = host[1:-1]
                self.host, self.port = host, int(m.group(2))
                return self

    @property
    def url(self):
        return "ws://%s:%d" % (self.host, self.port)

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None at the timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join()
        return self.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
        self.returncode = self.proc.wait()
        self._join()

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig (if still running) and waits; kills after timeout.
        Returns the exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait(timeout) is None:
                self.kill()
                return None
        else:
            self.returncode = self.proc.wait()
            self._join()
        return self.returncode

    def _join(self):
        for t in self._threads:
            t.join(timeout=2)


def describe_rc(rc):
    if rc is None:
        return "did not exit"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit code %d" % rc


@pytest.fixture
def gateway():
    """Factory: gateway(*flags, env=None) starts
    `$TICKGATE_BIN --server.listen=127.0.0.1:0 --server.echo_path=/echo *flags`,
    waits for its 'listening' line and returns a Gateway (.host .port .proc).
    listen=None / echo_path=None leave that default flag out; wait=False
    returns without waiting for the listening line. At teardown every
    gateway still running gets SIGTERM and must exit 0 within 10 s."""
    started = []
    binary = tickgate_bin()
    audit_dir = tempfile.mkdtemp(prefix="tickgate-audit-")

    def start(*flags, env=None, listen="127.0.0.1:0", echo_path="/echo", wait=True):
        # The audit log and the admin blocks file go to private files unless
        # the test names them (a later flag wins), so runs never write into
        # the repository.
        args = [binary, "--audit.path=%s" % os.path.join(audit_dir, "audit-%d.log" % len(started)),
                "--security.blocks_file=%s" % os.path.join(audit_dir, "blocks-%d.state" % len(started))]
        if listen is not None:
            args.append("--server.listen=%s" % listen)
        if echo_path is not None:
            args.append("--server.echo_path=%s" % echo_path)
        args += list(flags)
        gw = Gateway(args, child_env(env))
        started.append(gw)
        if wait:
            gw.wait_listening()
        return gw

    yield start

    problems = []
    for gw in reversed(started):
        already = gw.proc.poll() is not None
        rc = gw.stop()
        if rc != 0 and not gw.start_failed:
            what = "exited by itself with" if already else "after SIGTERM:"
            problems.append("tickgate %s %s (args %s)\n%s"
                            % (what, describe_rc(rc) if rc is not None else "no exit within %.0f s, killed"
                               % STOP_TIMEOUT, " ".join(gw.args[1:]), gw.output()))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def clients(gateway):
    """Factory for raw connections that are closed at teardown (before the
    gateways stop, as this fixture depends on `gateway`).
    clients.ws(gw, path) -> WSRaw after a successful upgrade;
    clients.raw(gw) -> WSRaw connected but without handshake;
    clients.http(gw) -> HTTPConn."""
    opened = []

    class Factory:
        @staticmethod
        def raw(gw, timeout=wsraw.DEFAULT_TIMEOUT):
            c = wsraw.WSRaw(gw.host, gw.port, timeout)
            opened.append(c)
            return c

        @staticmethod
        def ws(gw, path="/echo", headers=None):
            c = Factory.raw(gw)
            c.open(path, headers)
            return c

        @staticmethod
        def http(gw, timeout=wsraw.DEFAULT_TIMEOUT):
            c = wsraw.HTTPConn(gw.host, gw.port, timeout)
            opened.append(c)
            return c

    yield Factory
    for c in opened:
        c.close()


# ---------------------------------------------------------------------------
# Helpers for the JSON protocol on /ws (streaming, auth, metrics tests)
# ---------------------------------------------------------------------------

import json as _json  # noqa: E402

# HS256 secrets must be at least 32 bytes.
SECRET = "tickgate-integration-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-of-sufficient-length-9876543210"
SECRET_FLAG = "--auth.jwt_secret=" + SECRET


def mint(sub="u1", role=None, ttl=3600, secret=SECRET, algorithm="HS256", drop=(), **claims):
    """A JWT (PyJWT) with sub, iat, exp = now + ttl and, when given, role;
    extra claims are added, claims named in drop removed."""
    import jwt

    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + ttl}
    if role is not None:
        payload["role"] = role
    payload.update(claims)
    for k in drop:
        payload.pop(k, None)
    tok = jwt.encode(payload, secret, algorithm=algorithm)
    return tok.decode("ascii") if isinstance(tok, bytes) else tok


def wait_until(fn, timeout=10.0, what="condition", interval=0.02):
    """Polls fn() until it returns a truthy value, at most timeout seconds
    (an upper bound: it returns as soon as the condition holds)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("%s not reached within %.1f s (last value %r)" % (what, timeout, last))
        time.sleep(interval)


def wait_log(gw, pattern, timeout=10.0, start=0):
    """Waits for a stderr line (from line index start) matching pattern:
    stderr is read by its own thread, so a line may land after the server
    is seen listening on stdout."""
    rx = re.compile(pattern)
    return wait_until(lambda: next((l for l in gw.stderr.splitlines()[start:] if rx.search(l)), None), timeout,
                      "log line /%s/" % pattern)


def http_json(gw, method, path, headers=None, body=b"", timeout=wsraw.DEFAULT_TIMEOUT):
    return wsraw.http_request(gw.host, gw.port, method, path, headers, body, timeout)


def auth_headers(token, headers=None):
    """headers plus Authorization: Bearer token (when a token is given)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    return h


_DEFAULT = object()


def api(gw, method, path, token=None, body=_DEFAULT, headers=None, api_key=None):
    """An HTTP request with optional Bearer token / X-API-Key and a JSON body
    (dict/list -> JSON; bytes/str sent as is)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if api_key is not None:
        h["X-API-Key"] = api_key
    data = b""
    if body is not _DEFAULT:
        if isinstance(body, (dict, list)):
            data = _json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        h.setdefault("Content-Type", "application/json")
        if not data:
            h["Content-Length"] = "0"
    return http_json(gw, method, path, h, data)


def assert_refused(resp, status):
    """A handshake refusal: plain HTTP with status and a JSON error body, no upgrade."""
    assert resp.status == status, "expected %d, got %r" % (status, resp)
    assert "sec-websocket-accept" not in resp.headers, resp
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str), body
    return body


def strip_epochs(conf):
    """A subscription_confirmed without its epochs (PROTOCOL.md section 13),
    after checking them: one non-empty string (<= 32 chars) per confirmed
    symbol."""
    conf = dict(conf)
    epochs = conf.pop("epochs", None)
    assert isinstance(epochs, dict) and set(epochs) == set(conf.get("symbols", [])), conf
    assert all(isinstance(e, str) and 0 < len(e) <= 32 for e in epochs.values()), epochs
    return conf


def get_stats(gw):
    r = http_json(gw, "GET", "/api/stats")
    assert r.status == 200, r
    return r.json()


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': float} (labels exactly as sent)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def get_metrics(gw):
    r = http_json(gw, "GET", "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.body.decode("utf-8"))


def wait_metrics(gw, pred, timeout=10.0, what="metrics condition"):
    """Polls /metrics until pred(metrics) holds; returns those metrics."""
    return wait_until(lambda: (lambda m: m if pred(m) else None)(get_metrics(gw)), timeout, what)


def wait_stats(gw, pred, timeout=10.0, what="stats condition"):
    """Polls /api/stats until pred(stats) holds; returns those stats."""
    return wait_until(lambda: (lambda s: s if pred(s) else None)(get_stats(gw)), timeout, what)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE soft limit towards want (at most
    the hard limit); returns the resulting soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class JsonWS:
    """The JSON protocol over a raw WebSocket (wsraw.WSRaw). recv() returns
    the next text message as a dict; server pings are answered with pongs
    (pong=True) and counted."""

    def __init__(self, raw, pong=True):
        self.raw = raw
        self.pong = pong
        self.pings = 0
        self.hello = None
        self._ids = 0

    def send(self, obj):
        self.raw.send_text(obj if isinstance(obj, (str, bytes)) else _json.dumps(obj))

    def recv(self, timeout=wsraw.DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no message from the server within %.1f s" % timeout)
            try:
                f = self.raw.recv_frame(remaining)
            except wsraw.PeerClosed as e:
                raise AssertionError("server closed the connection: %s" % e) from None
            except AssertionError as e:
                if "no frame from the server" in str(e):
                    raise AssertionError("no message from the server within %.1f s" % timeout) from None
                raise
            if f.opcode == wsraw.OP_PING:
                self.pings += 1
                if self.pong:
                    self.raw.send_frame(wsraw.OP_PONG, f.payload)
                continue
            if f.opcode == wsraw.OP_PONG:
                continue
            if f.opcode == wsraw.OP_CLOSE:
                raise AssertionError("server closed the WebSocket: %s" % wsraw._describe_close(f.payload))
            assert f.opcode == wsraw.OP_TEXT, "expected a text frame, got %s" % wsraw.op_name(f.opcode)
            assert f.fin, "server fragmented a message"
            return _json.loads(f.payload.decode("utf-8"))

    def expect(self, type_, timeout=wsraw.DEFAULT_TIMEOUT, **fields):
        """The next message must be of type_ and carry fields (exact values)."""
        m = self.recv(timeout)
        assert m.get("type") == type_, "expected %s, got %r" % (type_, m)
        for k, v in fields.items():
            assert k in m and m[k] == v, "%s: expected %s=%r, got %r" % (type_, k, v, m)
        return m

    def until(self, pred, timeout=wsraw.DEFAULT_TIMEOUT, what="message"):
        """Reads until pred(msg); returns (msg, [messages before it])."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %s within %.1f s; got %d other messages, last %r"
                                     % (what, timeout, len(before), before[-3:]))
            try:
                m = self.recv(remaining)
            except AssertionError as e:
                if "no message from the server" in str(e):
                    raise AssertionError("no %s within %.1f s; got %d other messages, last %r"
                                         % (what, timeout, len(before), before[-3:])) from None
                raise
            if pred(m):
                return m, before
            before.append(m)

    def request(self, obj, timeout=wsraw.DEFAULT_TIMEOUT):
        """Sends obj and returns the next message."""
        self.send(obj)
        return self.recv(timeout)

    def fence(self, timeout=wsraw.DEFAULT_TIMEOUT):
        """Sends a heartbeat with a fresh id and returns every message that
        arrived before its heartbeat_ack."""
        self._ids += 1
        fid = "fence-%d" % self._ids
        self.send({"type": "heartbeat", "id": fid})
        ack, before = self.until(lambda m: m.get("type") == "heartbeat_ack" and m.get("id") == fid, timeout,
                                 "heartbeat_ack %s" % fid)
        return before

    def subscribe(self, symbols, id=None, timeout=wsraw.DEFAULT_TIMEOUT):
        """Subscribes and returns the confirmation after reading one snapshot
        per accepted symbol; any other reply fails."""
        msg = {"type": "subscribe", "symbols": list(symbols)}
        if id is not None:
            msg["id"] = id
        conf = self.request(msg, timeout)
        assert conf.get("type") == "subscription_confirmed", conf
        want = set(conf["symbols"])
        while want:
            m = self.recv(timeout)
            assert m.get("type") == "price_update" and m.get("snapshot") is True and m["symbol"] in want, \
                "expected snapshots for %s, got %r" % (sorted(want), m)
            want.discard(m["symbol"])
        return conf

    def publish(self, updates, id=None, timeout=wsraw.DEFAULT_TIMEOUT):
        """Publishes (this must be a publisher connection) and returns the reply."""
        msg = {"type": "publish", "updates": updates}
        if id is not None:
            msg["id"] = id
        return self.request(msg, timeout)

    def close(self):
        self.raw.close()


def SmallRcvBufWS(host, port, rcvbuf, timeout=wsraw.DEFAULT_TIMEOUT):
    """A raw WebSocket whose socket gets SO_RCVBUF before connect (so the
    receive window stays small when the test stops reading)."""
    return wsraw.BoundWS(host, port, timeout=timeout, rcvbuf=rcvbuf)


@pytest.fixture
def tickgate(gateway):
    """Factory: tickgate(*flags) = gateway(SECRET_FLAG, --feed.simulator=false,
    *flags). simulator=True leaves the simulator on; secret=False leaves the
    JWT secret out."""

    def start(*flags, simulator=False, secret=True, env=None):
        args = []
        if secret:
            args.append(SECRET_FLAG)
        if not simulator:
            args.append("--feed.simulator=false")
        return gateway(*(args + list(flags)), env=env)

    return start


@pytest.fixture
def jclients(clients):
    """JSON WebSocket clients on /ws, closed at teardown.
    jclients.open(gw, token=None, query="", headers=None) -> JsonWS after the
    'connected' message (in .hello); token goes in Authorization: Bearer.
    jclients.handshake(gw, ...) -> the upgrade Response (for refusals).
    jclients.small(gw, rcvbuf, ...) -> JsonWS over a socket with SO_RCVBUF."""
    opened = []

    class Factory:
        @staticmethod
        def open(gw, token=None, query="", headers=None, path="/ws", pong=True):
            raw = clients.ws(gw, path + query, auth_headers(token, headers))
            ws = JsonWS(raw, pong=pong)
            ws.hello = ws.expect("connected")
            return ws

        @staticmethod
        def handshake(gw, token=None, query="", headers=None, path="/ws"):
            raw = clients.raw(gw)
            return raw.handshake(path + query, auth_headers(token, headers))

        @staticmethod
        def small(gw, rcvbuf, token=None, query="", headers=None, path="/ws"):
            raw = SmallRcvBufWS(gw.host, gw.port, rcvbuf)
            opened.append(raw)
            raw.open(path + query, auth_headers(token, headers))
            ws = JsonWS(raw)
            ws.hello = ws.expect("connected")
            return ws

        @staticmethod
        def publisher(gw, sub="pub1"):
            return Factory.open(gw, token=mint(sub, "publisher"))

    yield Factory
    for c in opened:
        c.close()
