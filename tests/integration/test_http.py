"""The HTTP side of tickgate: /health, errors, keep-alive, limits, the
WebSocket upgrade checks and slow clients."""
import select
import socket
import time

import pytest

from wsraw import PeerClosed, accept_for, http_raw, http_request


def assert_error_body(resp):
    ctype = resp.headers.get("content-type", "")
    assert "json" in ctype, "error response should be JSON, Content-Type %r" % ctype
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str), body
    return body


@pytest.fixture
def gw(gateway):
    return gateway()


# ---------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------

def test_health(gw):
    resp = http_request(gw.host, gw.port, "GET", "/health")
    assert resp.status == 200, resp
    assert "json" in resp.headers.get("content-type", ""), resp
    body = resp.json()
    assert body.get("status") in ("healthy", "degraded"), body
    assert isinstance(body.get("checks"), dict), body


def test_health_with_query_string(gw):
    resp = http_request(gw.host, gw.port, "GET", "/health?verbose=1")
    assert resp.status == 200, resp


@pytest.mark.parametrize("path", ["/nosuch", "/health/x", "/api/nosuch", "/wsx"])
def test_unknown_path_404(gw, path):
    resp = http_request(gw.host, gw.port, "GET", path)
    assert resp.status == 404, resp
    assert_error_body(resp)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_health_wrong_method_405(gw, method):
    resp = http_request(gw.host, gw.port, method, "/health", body=b"{}" if method != "DELETE" else b"")
    assert resp.status == 405, resp
    assert_error_body(resp)


# ---------------------------------------------------------------------------
# connection handling
# ---------------------------------------------------------------------------

def test_keep_alive_two_requests(gw, clients):
    c = clients.http(gw)
    for _ in range(2):
        resp = c.request("GET", "/health")
        assert resp.status == 200, resp
        assert resp.headers.get("connection", "").lower() != "close", resp


def test_keep_alive_after_error(gw, clients):
    c = clients.http(gw)
    resp = c.request("GET", "/nosuch")
    assert resp.status == 404, resp
    resp = c.request("GET", "/health")
    assert resp.status == 200, resp


def test_pipelined_requests(gw, clients):
    c = clients.http(gw)
    c.send(c.request_bytes("GET", "/health") + c.request_bytes("GET", "/nosuch") + c.request_bytes("GET", "/health"))
    assert c.read_response().status == 200
    assert c.read_response().status == 404
    assert c.read_response().status == 200


def test_connection_close_honoured(gw, clients):
    c = clients.http(gw)
    resp = c.request("GET", "/health", headers={"Connection": "close"})
    assert resp.status == 200, resp
    c.wait_closed(timeout=5)


def test_http10_closes_by_default(gw, clients):
    c = clients.http(gw)
    c.send(b"GET /health HTTP/1.0\r\n\r\n")
    resp = c.read_response()
    assert resp.status == 200, resp
    c.wait_closed(timeout=5)


def test_headers_too_large_431(gw, clients):
    c = clients.http(gw)
    c.send(c.request_bytes("GET", "/health", headers={"X-Big": "a" * (17 * 1024)}))
    resp = c.read_response()
    assert resp.status == 431, resp
    assert_error_body(resp)


def test_many_headers_too_large_431(gw, clients):
    c = clients.http(gw)
    headers = {"X-H%03d" % i: "v" * 200 for i in range(100)}
    c.send(c.request_bytes("GET", "/health", headers=headers))
    resp = c.read_response()
    assert resp.status == 431, resp


def test_body_too_large_413(gateway, clients):
    gw = gateway("--server.max_http_body_bytes=1000")
    c = clients.http(gw)
    # Only the head is sent: the announced length alone must be refused.
    c.send(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 5000\r\n\r\n")
    resp = c.read_response()
    assert resp.status == 413, resp
    assert_error_body(resp)


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n",
], ids=["word", "bad-version", "tls-hello", "header-without-colon"])
def test_garbage_request_400(gw, data):
    resp = http_raw(gw.host, gw.port, data)
    assert resp.status == 400, resp


# Requests a proxy in front could read differently (RFC 9112): refused with
# 400 and the connection closed, so nothing after them is ever read as a
# request of its own (docs/protocol.md).
SMUGGLING = {
    "space-before-colon": b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    "te-space-before-colon": b"POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "obs-fold-tab": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n",
    "space-before-first-field": b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n",
    "tab-in-target": b"GET /health\tx HTTP/1.1\r\nHost: x\r\n\r\n",
    "te-in-http10": b"POST /api/publish HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "no-host": b"GET /health HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


@pytest.mark.parametrize("data", list(SMUGGLING.values()), ids=list(SMUGGLING))
def test_ambiguous_request_400_and_closed(gw, clients, data):
    c = clients.http(gw)
    # A second request behind it must never be answered.
    c.send(data + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = c.read_response()
    assert resp.status == 400, resp
    assert_error_body(resp)
    c.wait_closed(timeout=5)


def test_content_length_with_space_does_not_frame_body(gw, clients):
    """`Content-Length : 5` used to be honoured: the 5 body bytes were taken
    and the request behind them answered."""
    c = clients.http(gw)
    c.send(b"POST /nosuch HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"
           b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().status == 400
    assert c.wait_closed(timeout=5) == b""


def test_strictness_keeps_what_rfc_allows(gw, clients):
    c = clients.http(gw)
    c.send(b"GET /health HTTP/1.1\nHost: x\nX-A: a \t b\n\n")  # bare LF, whitespace inside a value
    assert c.read_response().status == 200
    assert http_raw(gw.host, gw.port, b"GET /health HTTP/1.0\r\n\r\n").status == 200  # no Host in 1.0


# ---------------------------------------------------------------------------
# WebSocket upgrade
# ---------------------------------------------------------------------------

BAD_UPGRADES = {
    "missing-key": {"Sec-WebSocket-Key": None},
    "key-not-base64": {"Sec-WebSocket-Key": "this is not base64!!"},
    "key-15-bytes": {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"},
    "key-17-bytes": {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAA="},
    "version-8": {"Sec-WebSocket-Version": "8"},
    "missing-version": {"Sec-WebSocket-Version": None},
    "missing-upgrade": {"Upgrade": None},
    "upgrade-not-websocket": {"Upgrade": "h2c"},
}


@pytest.mark.parametrize("headers", list(BAD_UPGRADES.values()), ids=list(BAD_UPGRADES))
@pytest.mark.parametrize("path", ["/ws", "/echo"])
def test_upgrade_refused_400(gw, clients, path, headers):
    c = clients.raw(gw)
    resp = c.handshake(path, headers)
    assert resp.status == 400, resp
    assert_error_body(resp)


@pytest.mark.parametrize("path", ["/ws", "/echo"])
def test_upgrade_accepted_101(gw, clients, path):
    c = clients.raw(gw)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    resp = c.handshake(path, {"Sec-WebSocket-Key": key, "Connection": "keep-alive, Upgrade",
                              "Upgrade": "WebSocket"})
    assert resp.status == 101, resp
    assert resp.headers.get("sec-websocket-accept") == accept_for(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", resp
    assert resp.headers.get("upgrade", "").lower() == "websocket", resp
    assert "upgrade" in resp.headers.get("connection", "").lower(), resp
    assert "sec-websocket-extensions" not in resp.headers, resp


def test_upgrade_on_unknown_path_404(gw, clients):
    c = clients.raw(gw)
    resp = c.handshake("/nosuch")
    assert resp.status == 404, resp


# ---------------------------------------------------------------------------
# slow clients
# ---------------------------------------------------------------------------

def wait_disconnected(sock, timeout, trickle=None, interval=0.1):
    """Waits until the server closes sock (EOF or reset), at most timeout s.
    With trickle (bytes), sends one byte of it every `interval` s meanwhile.
    Returns whatever the server sent before closing."""
    deadline = time.monotonic() + timeout
    got = b""
    pos = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("server kept the slow connection open for %.1f s" % timeout)
        if trickle is not None and pos < len(trickle):
            try:
                sock.send(trickle[pos:pos + 1])
            except (BrokenPipeError, ConnectionResetError):
                return got
            pos += 1
        r, _, _ = select.select([sock], [], [], min(remaining, interval if trickle is not None else remaining))
        if r:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return got
            if not data:
                return got
            got += data


def test_slowloris_silent_client(gateway):
    gw = gateway("--server.handshake_timeout_ms=500")
    s = socket.create_connection((gw.host, gw.port), timeout=5)
    try:
        wait_disconnected(s, timeout=5)
    finally:
        s.close()
    assert http_request(gw.host, gw.port, "GET", "/health").status == 200


def test_slowloris_trickling_headers(gateway):
    gw = gateway("--server.handshake_timeout_ms=500")
    s = socket.create_connection((gw.host, gw.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        # 60 bytes at one every 100 ms would last 6 s: longer than the bound.
        wait_disconnected(s, timeout=5, trickle=b"X-Slow-Header-" + b"a" * 46, interval=0.1)
    finally:
        s.close()
    assert http_request(gw.host, gw.port, "GET", "/health").status == 200


def test_slowloris_incomplete_upgrade(gateway):
    gw = gateway("--server.handshake_timeout_ms=500")
    s = socket.create_connection((gw.host, gw.port), timeout=5)
    try:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        wait_disconnected(s, timeout=5)
    finally:
        s.close()


def test_keep_alive_life_is_bounded(gateway, clients):
    """A small request every 0.3 s used to keep a connection open for ever
    (each answer restarted the idle timeout). server.keepalive_max_s bounds
    its whole life: the first answer after it says Connection: close (or the
    idle connection is closed at it), never before."""
    gw = gateway("--server.keepalive_max_s=2", "--server.handshake_timeout_ms=1000")
    c = clients.http(gw)
    t0 = time.monotonic()
    answers = 0
    while True:
        assert time.monotonic() - t0 < 15, "still open after 15 s and %d answers" % answers
        try:
            resp = c.request("GET", "/health")
        except PeerClosed:
            break  # closed by the server between two requests (at the end of its life)
        assert resp.status == 200, resp
        answers += 1
        if resp.headers.get("connection", "").lower() == "close":
            c.wait_closed(timeout=5)
            break
        time.sleep(0.3)
    assert time.monotonic() - t0 >= 1.9, "closed after %.2f s, before its 2 s life" % (time.monotonic() - t0)
    assert answers >= 3, answers


def test_slow_but_complete_request_works(gateway, clients):
    """A request that completes within the handshake timeout is served even
    when it arrives in pieces; and an idle connection did not block others."""
    gw = gateway("--server.handshake_timeout_ms=500")
    idle = socket.create_connection((gw.host, gw.port), timeout=5)
    try:
        c = clients.http(gw)
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n", chunk=1)
        c.send(b"\r\n")
        assert c.read_response().status == 200
    finally:
        idle.close()
