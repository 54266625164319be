"""Shared helpers for the security-layer integration tests (test_security,
test_admin, test_audit, test_jwt_forgery).

- sgw: like conftest's `tickgate` fixture (JWT secret, simulator off), but
  every gateway also gets --audit.path=<tmp_path>/audit.log (audit-N.log for
  the N-th further gateway of a test), kept in gw.audit_path.
- sws: JSON WebSocket clients that may bind a source address (127.0.0.2 ...)
  before connecting, so per-IP rules can be exercised from one machine.
- api(): admin/HTTP requests with credentials and a JSON body; api_from()
  and metrics_from() do the same from another source address (an IP at
  its connection limit, or blocked, is refused on every path).
- audit helpers: read the JSON-lines audit file, poll it with a deadline.

Test modules import the fixtures by name (`from sec_helpers import sgw, sws`),
which registers them for that module."""
import json

import pytest

import wsraw
from conftest import (SECRET_FLAG, JsonWS, api, assert_refused, auth_headers, get_metrics,  # noqa: F401 (re-exported)
                      parse_metrics, wait_until)
from wsraw import BoundWS  # noqa: F401 (re-exported for test_security)



@pytest.fixture
def sgw(gateway, tmp_path):
    """Factory: sgw(*flags, simulator=False, secret=True, listen=...) starts
    a gateway with the test JWT secret, the simulator off and its own audit
    file; returns the Gateway with .audit_path."""
    n = [0]

    def start(*flags, simulator=False, secret=True, env=None, listen="127.0.0.1:0", audit=True):
        args = []
        path = None
        if secret:
            args.append(SECRET_FLAG)
        if not simulator:
            args.append("--feed.simulator=false")
        if audit:
            path = str(tmp_path / ("audit.log" if n[0] == 0 else "audit-%d.log" % n[0]))
            n[0] += 1
            args.append("--audit.path=" + path)
        gw = gateway(*(args + list(flags)), env=env, listen=listen)
        gw.audit_path = path
        return gw

    return start


@pytest.fixture
def sws(gateway):
    """JSON WebSocket clients on /ws, optionally from a bound source address,
    closed at teardown (before the gateways stop).
    sws.open(gw, token=None, src=None, headers=None, query="") -> JsonWS after 'connected'
    sws.handshake(gw, ...) -> the upgrade Response (for refusals)
    sws.raw(gw, src=None) -> BoundWS without handshake."""
    opened = []

    class Factory:
        @staticmethod
        def raw(gw, src=None, timeout=wsraw.DEFAULT_TIMEOUT):
            c = BoundWS(gw.host, gw.port, src, timeout)
            opened.append(c)
            return c

        @staticmethod
        def open(gw, token=None, src=None, headers=None, query="", path="/ws", pong=True):
            raw = Factory.raw(gw, src)
            raw.open(path + query, auth_headers(token, headers))
            ws = JsonWS(raw, pong=pong)
            ws.hello = ws.expect("connected")
            return ws

        @staticmethod
        def handshake(gw, token=None, src=None, headers=None, query="", path="/ws"):
            raw = Factory.raw(gw, src)
            try:
                return raw.handshake(path + query, auth_headers(token, headers))
            finally:
                raw.close()

    yield Factory
    for c in opened:
        c.close()


def metric(gw, key):
    return get_metrics(gw).get(key, 0.0)


def api_from(gw, src, method, path, token=None, body=None, headers=None):
    """Like api(), on a fresh connection from source address src."""
    h = auth_headers(token, headers)
    data = b""
    if body is not None:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h.setdefault("Content-Type", "application/json")
    c = BoundWS(gw.host, gw.port, src)
    try:
        return c.request(method, path, h, data)
    finally:
        c.close()


def metrics_from(gw, src):
    r = api_from(gw, src, "GET", "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.body.decode("utf-8"))


# ---------------------------------------------------------------------------
# audit log
# ---------------------------------------------------------------------------

def read_audit(path):
    """The audit file as a list of dicts (complete lines only)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        if line.strip():
            out.append(json.loads(line.decode("utf-8")))
    return out


def wait_audit(gw, pred, timeout=10.0, what="audit condition"):
    """Polls gw's audit file until pred(events) is truthy; returns the events."""
    return wait_until(lambda: (lambda ev: ev if pred(ev) else None)(read_audit(gw.audit_path)), timeout, what)


def events_of(events, name, **fields):
    out = []
    for e in events:
        if e.get("event") != name:
            continue
        if all(e.get(k) == v for k, v in fields.items()):
            out.append(e)
    return out

