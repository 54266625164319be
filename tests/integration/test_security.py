"""The security layer on /ws (contract sections 1-3 and 7): per-IP, per-user
and global connection limits (and that the per-IP count never drifts), the
rate limit, per-role subscription limits, message size, suspicious content,
threat escalation (high: close 1008; critical: the IP is blocked for
security.auto_block_s), IP blocks from the config (IPv4 and IPv6), trusted
proxies and X-Forwarded-For, the Origin allowlist, header/request limits,
the users file with SIGHUP reload and token expiry while connected.

Every gateway gets its own audit file and the test JWT secret (sec_helpers.sgw).
Clients from 127.0.0.2 / 127.0.0.3 bind their source address before they
connect (Linux routes all of 127/8 to loopback)."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import wsraw
from conftest import OTHER_SECRET, child_env, get_metrics, get_stats, mint, tickgate_bin, wait_metrics, wait_stats, wait_until
from sec_helpers import (BoundWS, api, api_from, assert_refused, events_of, metrics_from, sgw, sws,  # noqa: F401
                         wait_audit)

SYMS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "MA", "UNH", "JNJ"]


def is_error(m, code, id=None):
    return m.get("type") == "error" and m.get("code") == code and (id is None or m.get("id") == id)


def close_clean(ws):
    ws.raw.send_close(1000)
    ws.raw.expect_close(1000, reply=False)


def ping_pong(ws, payload=b"alive?"):
    """A WebSocket ping is answered (no JSON message, so no rate limit and
    no violation)."""
    ws.raw.send_frame(wsraw.OP_PING, payload)
    while True:
        f = ws.raw.recv_frame(5)
        if f.opcode == wsraw.OP_PONG:
            assert f.payload == payload
            return
        assert f.opcode != wsraw.OP_CLOSE, "closed instead of pong: %s" % wsraw._describe_close(f.payload)


# ---------------------------------------------------------------------------
# connection limits
# ---------------------------------------------------------------------------

def test_per_ip_limit_429_with_retry_after_and_release(sgw, sws):
    gw = sgw("--limits.max_connections_per_ip=3")
    conns = [sws.open(gw) for _ in range(3)]  # at the bound: all accepted
    resp = sws.handshake(gw)                  # just past it
    body = assert_refused(resp, 429)
    assert int(resp.headers["retry-after"]) > 0, resp
    assert body["error"] == "too_many_connections", body
    # Another client IP has its own count.
    other = sws.open(gw, src="127.0.0.2")

    def open_now(n):  # asked from a third IP: 127.0.0.1's requests count against its full limit
        return api_from(gw, "127.0.0.3", "GET", "/api/stats").json()["connections_open"] == n

    # Closing one frees a slot (release is asynchronous: wait for the stats).
    close_clean(conns[0])
    wait_until(lambda: open_now(3), timeout=5, what="3 connections open")
    sws.open(gw)
    assert_refused(sws.handshake(gw), 429)
    # An abrupt close (no close frame) frees its slot too.
    conns[1].raw.close()
    wait_until(lambda: open_now(3), timeout=5, what="3 connections open")
    sws.open(gw)
    assert_refused(sws.handshake(gw), 429)
    assert other.fence() == []


def test_per_user_limit_429(sgw, sws):
    gw = sgw("--limits.max_connections_per_user=2")
    tok = mint("alice", "trader")
    a = sws.open(gw, token=tok)
    sws.open(gw, token=mint("alice", "viewer"))  # same user, any token
    resp = sws.handshake(gw, token=tok)
    body = assert_refused(resp, 429)
    assert int(resp.headers["retry-after"]) > 0, resp
    assert "user" in body["message"], body
    # Another user and anonymous clients are not affected.
    assert sws.open(gw, token=mint("bob", "trader")).hello["user_id"] == "bob"
    sws.open(gw)
    sws.open(gw)
    # The user's count is kept across client IPs.
    assert_refused(sws.handshake(gw, token=tok, src="127.0.0.2"), 429)
    close_clean(a)
    wait_stats(gw, lambda s: s["connections_open"] == 4, timeout=5, what="4 connections open")
    assert sws.open(gw, token=tok, src="127.0.0.2").hello["user_id"] == "alice"
    assert_refused(sws.handshake(gw, token=tok), 429)


def test_per_user_count_survives_in_band_identity_change(sgw, sws):
    """A connection admitted as alice that re-authenticates in-band as bob
    is gone once closed: alice's count must drop back (no lock-out)."""
    gw = sgw("--limits.max_connections_per_user=1")
    a = sws.open(gw, token=mint("alice", "trader"))
    assert_refused(sws.handshake(gw, token=mint("alice", "trader")), 429)
    r = a.request({"type": "authenticate", "token": mint("bob", "trader"), "id": 1})
    assert r == {"type": "authenticated", "user_id": "bob", "role": "trader", "id": 1}, r
    close_clean(a)
    wait_stats(gw, lambda s: s["connections_open"] == 0, timeout=5, what="no connection open")
    # Nobody is connected: alice and bob are both admitted (once each).
    assert sws.open(gw, token=mint("alice", "trader")).hello["user_id"] == "alice"
    assert sws.open(gw, token=mint("bob", "trader")).hello["user_id"] == "bob"
    assert_refused(sws.handshake(gw, token=mint("alice", "trader")), 429)


def test_per_user_limit_not_bypassed_by_in_band_authenticate(sgw, sws):
    """An anonymous connection that authenticates in-band as a user already
    at the per-user limit must not make room for one more of that user."""
    gw = sgw("--limits.max_connections_per_user=1")
    sws.open(gw, token=mint("carol", "trader"))
    anon = sws.open(gw)
    anon.request({"type": "authenticate", "token": mint("carol", "trader"), "id": 1})
    close_clean(anon)
    wait_stats(gw, lambda s: s["connections_open"] == 1, timeout=5, what="one connection open")
    # carol's first connection is still open: a second one is beyond the limit.
    assert_refused(sws.handshake(gw, token=mint("carol", "trader")), 429)


def test_global_limit_503(sgw, sws):
    gw = sgw("--limits.max_connections=2")
    a = sws.open(gw)
    sws.open(gw, src="127.0.0.2")
    resp = sws.handshake(gw, src="127.0.0.3")
    assert_refused(resp, 503)
    assert resp.headers.get("retry-after"), resp
    close_clean(a)
    wait_stats(gw, lambda s: s["connections_open"] == 1, timeout=5, what="1 connection open")
    sws.open(gw, src="127.0.0.3")
    assert_refused(sws.handshake(gw), 503)


def _storm_round(gw, rnd, n, kinds):
    """Opens n sockets from 127.0.0.1 of mixed kinds and ends them in many
    ways. Returns the sockets the server must close itself (requests that
    never finish)."""
    upgrade = lambda c: c.request_bytes("GET", "/ws", {  # noqa: E731
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": wsraw.new_key(),
        "Sec-WebSocket-Version": "13"})
    opened = []
    try:
        return _storm_round_body(gw, rnd, n, kinds, upgrade, opened)
    except BaseException:
        for _, c in opened:
            c.close()
        raise


def _storm_round_body(gw, rnd, n, kinds, upgrade, opened):
    for i in range(n):
        kind = kinds[(i + rnd) % len(kinds)]
        c = BoundWS(gw.host, gw.port)
        opened.append((kind, c))
        if kind in ("clean", "fin", "rst", "fin_sub", "rst_sub", "rst_sub_nowait", "close_nowait", "proto_err",
                    "close_then_rst"):
            c.open("/ws")
            f = c.recv_frame(5)
            assert f.opcode == wsraw.OP_TEXT and b'"connected"' in f.payload, f
            if kind in ("fin_sub", "rst_sub", "rst_sub_nowait"):
                c.send_frame(wsraw.OP_TEXT, json.dumps({"type": "subscribe", "symbols": SYMS[(i % 4):(i % 4) + 2]}))
                if kind != "rst_sub_nowait":
                    while b"subscription_confirmed" not in c.recv_frame(5).payload:
                        pass
        elif kind == "mid_handshake":
            req = upgrade(c)
            c.send(req[:len(req) // 2])
        elif kind == "never_finish":
            c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    linger = []
    for kind, c in opened:
        if kind == "clean":
            c.send_close(1000)
            c.expect_close(1000, reply=False)
            c.close()
        elif kind in ("fin", "fin_sub", "mid_handshake"):
            c.close()
        elif kind in ("rst", "rst_sub", "rst_sub_nowait"):
            c.rst()
        elif kind == "close_nowait":
            c.send_close(1001)
            c.close()
        elif kind == "close_then_rst":
            c.send_close(1000)
            c.rst()
        elif kind == "proto_err":
            c.send_frame(wsraw.OP_TEXT, b"{}", rsv=4)  # RSV1 without an extension: 1002
            c.rst()
        elif kind == "upgrade_rst":
            c.send(upgrade(c))
            c.rst()
        elif kind == "upgrade_fin":
            c.send(upgrade(c))
            c.close()
        elif kind == "never_finish":
            linger.append(c)
    return linger


def test_connection_counts_exact_after_storm(sgw, sws):
    """500 connections opened and ended abruptly in many ways (never more
    than 50 at once): afterwards nothing is left over, and exactly
    max_connections_per_ip connections fit again (the per-IP count did not
    drift)."""
    per_ip = 50
    gw = sgw("--limits.max_connections_per_ip=%d" % per_ip, "--server.handshake_timeout_ms=200",
             "--server.workers=2", "--limits.max_connects_per_ip_per_minute=100000",
             "--limits.max_messages_per_minute=100000")
    kinds = ["clean", "fin", "rst", "fin_sub", "rst_sub", "rst_sub_nowait", "close_nowait", "close_then_rst",
             "proto_err", "mid_handshake", "upgrade_rst", "upgrade_fin", "never_finish"]
    total = 0
    for rnd in range(10):
        linger = _storm_round(gw, rnd, per_ip, kinds)
        total += per_ip
        # The server ends requests that never finish (handshake timeout).
        for c in linger:
            c.wait_closed(timeout=5, allow_data=True)
            c.close()
        wait_stats(gw, lambda s: s["connections_open"] == 0 and s["subscriptions"] == 0, timeout=10,
                   what="no connection and no subscription left after round %d" % rnd)
    assert total == 500
    s = get_stats(gw)
    assert s["active_streams"] == 0, s
    assert sum(s["connections"].values()) == 0, s
    assert s["connections_total"] >= 10 * 9 * per_ip // len(kinds), s
    # Exactly per_ip fit; the next is refused.
    conns = [sws.open(gw) for _ in range(per_ip)]
    assert_refused(sws.handshake(gw), 429)
    # (127.0.0.1 is at its limit: its HTTP requests count too.)
    assert api_from(gw, "127.0.0.2", "GET", "/api/stats").json()["connections_open"] == per_ip
    assert conns[0].fence() == []


# ---------------------------------------------------------------------------
# rate limit
# ---------------------------------------------------------------------------

def test_rate_limit_drops_message(sgw, sws):
    gw = sgw("--limits.max_messages_per_minute=5")
    ws = sws.open(gw)
    assert ws.hello["limits"]["max_messages_per_minute"] == 5
    for i in range(5):  # the burst: exactly 5 go through
        assert ws.request({"type": "heartbeat", "id": i})["type"] == "heartbeat_ack"
    r = ws.request({"type": "subscribe", "symbols": ["AAPL"], "id": "sub6"})
    assert is_error(r, "rate_limited", "sub6") and isinstance(r.get("message"), str), r
    # The subscribe was dropped: the next reply is the next message's own
    # (refused too: the bucket refills one token per 12 s), no confirmation.
    r = ws.request({"type": "heartbeat", "id": "hb7"})
    assert is_error(r, "rate_limited", "hb7"), r
    s = get_stats(gw)
    assert s["subscriptions"] == 0 and s["active_streams"] == 0, s
    m = get_metrics(gw)
    assert m["tickgate_rate_limited_total"] == 2, m["tickgate_rate_limited_total"]
    assert m['tickgate_security_violations_total{kind="rate_limited"}'] == 2
    # The bucket is the anonymous client IP's: another connection from it
    # shares it, another IP has its own.
    same = sws.open(gw)
    assert is_error(same.request({"type": "heartbeat", "id": 1}), "rate_limited", 1)
    other = sws.open(gw, src="127.0.0.2")
    assert other.request({"type": "heartbeat", "id": 1})["type"] == "heartbeat_ack"


def spend(ws, n, prefix="hb"):
    for i in range(n):
        r = ws.request({"type": "heartbeat", "id": "%s%d" % (prefix, i)})
        assert r["type"] == "heartbeat_ack", (i, r)


def test_reconnecting_does_not_refill_the_budget(sgw, sws):
    """The message budget belongs to the user (anonymous: the client IP),
    not to the socket: closing and reconnecting got a full bucket each time
    (15 cycles moved 900 messages against 60/minute)."""
    gw = sgw("--limits.max_messages_per_minute=5", "--server.workers=2", "--security.high_violations=100")
    tok = mint("budget-user", "viewer")
    # A user: spend the burst, reconnect (even from another IP), refused.
    ws = sws.open(gw, token=tok, src="127.0.0.2")
    spend(ws, 5)
    close_clean(ws)
    again = sws.open(gw, token=tok, src="127.0.0.3")
    assert is_error(again.request({"type": "heartbeat", "id": "x"}), "rate_limited", "x")
    close_clean(again)
    # Anonymous: the IP's budget, across reconnects.
    for i in range(3):
        anon = sws.open(gw, src="127.0.0.4")
        if i == 0:
            spend(anon, 5)
        else:
            assert is_error(anon.request({"type": "heartbeat", "id": i}), "rate_limited", i)
        close_clean(anon)
    # Others are unaffected: another user, another IP, and the user's budget
    # is not the anonymous IP's.
    assert sws.open(gw, token=mint("someone-else", "viewer"), src="127.0.0.4").request(
        {"type": "heartbeat", "id": 1})["type"] == "heartbeat_ack"
    assert sws.open(gw, src="127.0.0.5").request({"type": "heartbeat", "id": 1})["type"] == "heartbeat_ack"
    m = get_metrics(gw)
    assert m["tickgate_rate_limited_total"] == 3, m["tickgate_rate_limited_total"]


def test_connections_of_one_user_share_one_budget(sgw, sws):
    """Two connections of one user (on either worker) draw on one bucket."""
    gw = sgw("--limits.max_messages_per_minute=6", "--server.workers=2", "--security.high_violations=100")
    tok = mint("shared", "viewer")
    conns = [sws.open(gw, token=tok) for _ in range(4)]
    spend(conns[0], 2, "a")
    spend(conns[1], 2, "b")
    spend(conns[2], 2, "c")
    for i, ws in enumerate(conns):
        assert is_error(ws.request({"type": "heartbeat", "id": i}), "rate_limited", i), i
    # In-band authenticate moves a connection to the new user's budget.
    r = conns[3].request({"type": "authenticate", "token": mint("fresh", "viewer"), "id": "auth"})
    assert is_error(r, "rate_limited", "auth"), r  # the authenticate itself is a message of the old identity
    fresh = sws.open(gw)  # anonymous (127.0.0.1): its own IP budget
    r = fresh.request({"type": "authenticate", "token": mint("fresh", "viewer"), "id": "auth"})
    assert r["type"] == "authenticated", r
    spend(fresh, 6)
    assert is_error(fresh.request({"type": "heartbeat", "id": "z"}), "rate_limited", "z")


def test_connection_attempts_per_ip_per_minute(sgw, sws, clients):
    """limits.max_connects_per_ip_per_minute bounds /ws handshakes per client
    IP: past it 429 (the status of the other per-IP limits) with
    Retry-After, not a violation, nothing else counted."""
    gw = sgw("--limits.max_connects_per_ip_per_minute=3", "--security.critical_violations=1")
    for _ in range(3):
        close_clean(sws.open(gw, src="127.0.0.2"))
    resp = sws.handshake(gw, src="127.0.0.2")
    body = assert_refused(resp, 429)
    assert body["error"] == "too_many_connection_attempts", body
    assert 1 <= int(resp.headers["retry-after"]) <= 20, resp.headers
    # Refused attempts do not spend more: still refused, and that is all.
    assert_refused(sws.handshake(gw, src="127.0.0.2"), 429)
    # Other IPs, the echo endpoint and plain HTTP are not counted.
    assert sws.open(gw, src="127.0.0.3").hello["role"] == "anonymous"
    echo = BoundWS(gw.host, gw.port, "127.0.0.2")
    try:
        echo.open("/echo")
    finally:
        echo.close()
    assert api(gw, "GET", "/health").status == 200
    m = get_metrics(gw)
    assert m["tickgate_handshakes_rate_limited_total"] == 2, m
    assert sum(v for k, v in m.items() if k.startswith("tickgate_security_violations_total")) == 0, m
    assert m["tickgate_blocked_ips"] == 0
    assert sum(v for k, v in m.items() if k.startswith("tickgate_auth_failures_total")) == 0, m


# ---------------------------------------------------------------------------
# subscription limits per role
# ---------------------------------------------------------------------------

@pytest.fixture
def symbols_file(tmp_path):
    p = tmp_path / "symbols.txt"
    p.write_text("".join("S%03d\n" % i for i in range(110)))
    return str(p)


def subscribe_all(ws, symbols, id):
    """Sends one subscribe; returns (confirmed symbols, {reason: symbols}) of
    the replies up to a fence (no snapshots: the universe has no prices)."""
    ws.send({"type": "subscribe", "symbols": symbols, "id": id})
    msgs = ws.fence()
    conf = [m for m in msgs if m["type"] == "subscription_confirmed"]
    fails = {m["reason"]: m["symbols"] for m in msgs if m["type"] == "subscription_failed"}
    for m in msgs:
        assert m.get("id") == id and m["type"] in ("subscription_confirmed", "subscription_failed"), m
    assert len(conf) <= 1, msgs
    return (conf[0]["symbols"] if conf else None), fails


@pytest.mark.parametrize("role,limit", [(None, 3), ("viewer", 10), ("trader", 100)])
def test_subscription_limit_per_role(sgw, sws, symbols_file, role, limit):
    gw = sgw("--feed.symbols_file=" + symbols_file)
    ws = sws.open(gw, token=mint("u-%s" % role, role) if role else None)
    assert ws.hello["limits"]["max_subscriptions"] == limit
    names = ["S%03d" % i for i in range(110)]
    # Up to the limit minus one, then one request that crosses it by two.
    first = names[:limit - 1]
    conf, fails = subscribe_all(ws, first, "a")
    assert conf == first and fails == {}, (conf, fails)
    rest = names[limit - 1:limit + 2]
    conf, fails = subscribe_all(ws, rest, "b")
    assert conf == rest[:1], conf
    assert fails == {"limit_exceeded": rest[1:]}, fails
    # At the limit: another new symbol fails alone; re-subscribing a held
    # one is still confirmed (idempotent, not limit_exceeded).
    conf, fails = subscribe_all(ws, [names[limit + 5]], "c")
    assert conf is None and fails == {"limit_exceeded": [names[limit + 5]]}, (conf, fails)
    conf, fails = subscribe_all(ws, [names[0]], "d")
    assert conf == [names[0]] and fails == {}, (conf, fails)
    assert get_stats(gw)["subscriptions"] == limit
    # Unsubscribing frees room for one more.
    assert ws.request({"type": "unsubscribe", "symbols": [names[0]], "id": "e"})["type"] == \
        "unsubscription_confirmed"
    conf, fails = subscribe_all(ws, [names[limit + 5]], "f")
    assert conf == [names[limit + 5]] and fails == {}, (conf, fails)


# ---------------------------------------------------------------------------
# message size
# ---------------------------------------------------------------------------

def sized_heartbeat(n, id="big"):
    base = {"type": "heartbeat", "id": id, "pad": ""}
    pad = n - len(json.dumps(base, separators=(",", ":")))
    assert pad >= 0
    base["pad"] = "a" * pad
    s = json.dumps(base, separators=(",", ":")).encode()
    assert len(s) == n
    return s


def test_message_size_limit(sgw, sws):
    gw = sgw("--limits.max_message_bytes=1024")
    ws = sws.open(gw)
    assert ws.hello["limits"]["max_message_bytes"] == 1024
    # At the bound: accepted, whole or in fragments.
    ws.send(sized_heartbeat(1024, "whole"))
    assert ws.recv()["id"] == "whole"
    data = sized_heartbeat(1024, "frag")
    ws.raw.send_frame(wsraw.OP_TEXT, data[:500], fin=False)
    ws.raw.send_frame(wsraw.OP_CONT, data[500:900], fin=False)
    ws.raw.send_frame(wsraw.OP_CONT, data[900:], fin=True)
    assert ws.recv()["id"] == "frag"
    # One byte over: close 1009.
    ws.send(sized_heartbeat(1025))
    ws.raw.expect_close(1009)
    ws.close()
    # Fragments that add up to one byte over: 1009.
    ws2 = sws.open(gw)
    data = sized_heartbeat(1025)
    ws2.raw.send_frame(wsraw.OP_TEXT, data[:600], fin=False)
    ws2.raw.send_frame(wsraw.OP_CONT, data[600:], fin=True)
    ws2.raw.expect_close(1009)
    ws2.close()
    # A frame header announcing 10 MB (no payload follows): 1009 at once.
    ws3 = sws.open(gw)
    t0 = time.monotonic()
    ws3.raw.send_frame(wsraw.OP_TEXT, b"", length_override=10 * 1024 * 1024)
    ws3.raw.expect_close(1009, timeout=2)
    assert time.monotonic() - t0 < 2
    ws3.close()
    wait_metrics(gw, lambda m: m['tickgate_disconnections_total{reason="protocol_error"}'] == 3, timeout=5,
                 what="three protocol-error disconnections")


# ---------------------------------------------------------------------------
# suspicious content
# ---------------------------------------------------------------------------

SUSPICIOUS = [
    {"id": "<script>alert(1)</script>"},
    {"id": "x<ScRiPt src=//evil>"},
    {"note": "JAVASCRIPT:alert(1)"},
    {"note": "javascript:void(0)"},
    {"meta": {"img": "<img src=x onerror=alert(1)>"}},
    {"meta": {"deep": [{"x": ["ok", "ONERROR=alert(1)"]}]}},
    {"meta": ["fine", "onload = go()"]},
    {"note": "eval(atob('x'))"},
    {"meta": {"a": {"b": {"c": "EvAl(1)"}}}},
    {"symbols": ["AAPL", "<script>"]},
    {"id": "onerror=1"},
]

HARMLESS = [
    {"id": "condition=1"},
    {"note": "evaluation (draft)"},
    {"note": "java script: not a scheme"},
    {"meta": {"q": "Donation=5", "r": ["one day", "scripted"]}},
]


def test_suspicious_content_refused_and_dropped(sgw, sws):
    gw = sgw("--security.high_violations=1000", "--security.critical_violations=60")
    ws = sws.open(gw, token=mint("t1", "trader"))
    for i, extra in enumerate(SUSPICIOUS):
        msg = {"type": "subscribe", "symbols": ["AAPL"], "id": "s%d" % i}
        msg.update(extra)
        r = ws.request(msg)
        assert r["type"] == "error" and r["code"] == "suspicious_content", (extra, r)
        assert r.get("id") == msg["id"], r
        # Dropped: nothing else follows (no confirmation, no snapshot).
        assert ws.fence() == [], extra
    assert get_stats(gw)["subscriptions"] == 0
    m = get_metrics(gw)
    assert m['tickgate_security_violations_total{kind="suspicious_content"}'] == len(SUSPICIOUS)
    # JSON escapes are decoded before the check.
    r = ws.request('{"type":"heartbeat","id":"esc","x":"\\u003cscript>"}')
    assert is_error(r, "suspicious_content", "esc"), r
    # Other message types are checked too.
    r = ws.request({"type": "heartbeat", "id": 99, "x": "<SCRIPT>"})
    assert is_error(r, "suspicious_content", 99), r
    # Harmless look-alikes pass.
    for i, extra in enumerate(HARMLESS):
        msg = {"type": "subscribe", "symbols": ["MSFT"], "id": "h%d" % i}
        msg.update(extra)
        r = ws.request(msg)
        assert r["type"] == "subscription_confirmed" and r["id"] == msg["id"], (extra, r)
        ws.fence()  # the snapshot
    assert get_stats(gw)["subscriptions"] == 1


def test_suspicious_content_check_can_be_disabled(sgw, sws):
    gw = sgw("--security.suspicious_content=false")
    ws = sws.open(gw)
    r = ws.request({"type": "heartbeat", "id": "<script>"})
    assert r["type"] == "heartbeat_ack" and r["id"] == "<script>", r


# ---------------------------------------------------------------------------
# threat escalation
# ---------------------------------------------------------------------------

def test_high_threat_closes_1008(sgw, sws):
    gw = sgw("--limits.max_messages_per_minute=4")
    ws = sws.open(gw)
    # 1 forbidden (anonymous may not publish)
    assert is_error(ws.request({"type": "publish", "updates": [], "id": 1}), "forbidden", 1)
    # 2 suspicious_content
    assert is_error(ws.request({"type": "heartbeat", "id": "<script>"}), "suspicious_content", "<script>")
    # 3 auth_failed (the connection stays as it was)
    assert is_error(ws.request({"type": "authenticate", "token": "not.a.jwt", "id": 3}), "auth_failed", 3)
    # the 4th message of the minute is fine
    assert ws.request({"type": "heartbeat", "id": 4})["type"] == "heartbeat_ack"
    # 4 rate_limited
    assert is_error(ws.request({"type": "heartbeat", "id": 5}), "rate_limited", 5)
    # 5 invalid_message: still open afterwards (5 < 6)
    assert is_error(ws.request([1, 2]), "invalid_message")
    ping_pong(ws)
    # 6 invalid_json: the reply, then close 1008
    ws.send("{not json")
    assert is_error(ws.recv(), "invalid_json")
    code, reason, before = ws.raw.expect_close(1008, allow_data=False)
    m = wait_metrics(gw, lambda m: m['tickgate_disconnections_total{reason="policy"}'] == 1, timeout=5,
                     what="policy disconnection")
    kinds = {k: m['tickgate_security_violations_total{kind="%s"}' % k]
             for k in ("forbidden", "suspicious_content", "auth_failed", "rate_limited", "invalid_message")}
    assert kinds == {"forbidden": 1, "suspicious_content": 1, "auth_failed": 1, "rate_limited": 1,
                     "invalid_message": 2}, kinds
    assert m["tickgate_blocked_ips"] == 0
    # Only that connection: the IP is not blocked (6 < 10).
    sws.open(gw)


def test_critical_threat_blocks_ip_then_expires(sgw, sws):
    gw = sgw("--security.auto_block_s=2", "--server.workers=2")
    local = sws.open(gw)                       # 127.0.0.1: unaffected
    a = sws.open(gw, src="127.0.0.2")
    b = sws.open(gw, src="127.0.0.2")
    for i in range(5):                         # 5 violations on a (< high 6)
        assert is_error(a.request("{bad %d" % i), "invalid_json")
    for i in range(4):                         # 4 more on b: 9 from the IP
        assert is_error(b.request("{bad %d" % i), "invalid_json")
    ping_pong(a)
    ping_pong(b)
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0
    # The 10th violation from 127.0.0.2 within the window: critical.
    b.send("{bad 10")
    assert is_error(b.recv(), "invalid_json")
    t_block = time.monotonic()
    b.raw.expect_close(1008, allow_data=False)
    a.raw.expect_close(1008, allow_data=False)
    assert_refused(sws.handshake(gw, src="127.0.0.2"), 403)
    assert api(gw, "GET", "/api/admin/connections", token=mint("adm", "admin"),
               headers={}).status == 200  # admin API from 127.0.0.1 still fine
    m = get_metrics(gw)
    assert m["tickgate_blocked_ips"] == 1
    assert m['tickgate_disconnections_total{reason="policy"}'] == 2
    # 127.0.0.1 is unaffected.
    assert local.fence() == []
    sws.open(gw)

    # The block expires after auto_block_s (2 s; whole-second clock).
    def back():
        r = sws.handshake(gw, src="127.0.0.2")
        assert r.status in (101, 403), r
        return r.status == 101

    wait_until(back, timeout=6, what="127.0.0.2 admitted again", interval=0.1)
    assert time.monotonic() - t_block >= 0.9, "block lifted too early"
    wait_metrics(gw, lambda m: m["tickgate_blocked_ips"] == 0, timeout=5, what="blocked_ips back to 0")
    # A fresh start: one violation does not re-block.
    c = sws.open(gw, src="127.0.0.2")
    assert is_error(c.request("{x"), "invalid_json")
    assert c.fence() == []


def test_pipelined_violations_stop_at_high(sgw, sws):
    """Messages queued behind the one that closes the connection are not
    processed: 12 bad messages in one write count 6, the IP is not blocked."""
    gw = sgw()
    ws = sws.open(gw)
    ws.raw.send(b"".join(wsraw.build_frame(wsraw.OP_TEXT, b"{bad %d" % i) for i in range(12)))
    _, _, before = ws.raw.expect_close(1008)
    assert len(before) == 6, before
    m = get_metrics(gw)
    assert m['tickgate_security_violations_total{kind="invalid_message"}'] == 6
    assert m["tickgate_blocked_ips"] == 0
    sws.open(gw)


def test_critical_threshold_above_64_is_honoured(sgw, sws):
    """security.critical_violations accepts up to 1000000; 70 means 70."""
    gw = sgw("--security.critical_violations=70", "--security.high_violations=1000")
    ws = sws.open(gw)
    for i in range(69):
        ws.send("{bad %d" % i)
        try:
            r = ws.recv(timeout=5)
        except AssertionError as e:
            raise AssertionError("closed (IP blocked) once %d violations were sent (critical is 70): %s" % (i + 1, e)) from None
        assert is_error(r, "invalid_json"), r
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0, "IP blocked before 70 violations"
    ws.send("{bad 70")
    assert is_error(ws.recv(), "invalid_json")
    ws.raw.expect_close(1008)
    assert metrics_from(gw, "127.0.0.2")["tickgate_blocked_ips"] == 1  # 127.0.0.1 is refused everywhere now


def test_failed_handshakes_block_the_ip(sgw, sws):
    """Credential guessing is not free: a failed handshake authentication is
    an auth_failed violation of the client IP, audited; the 10th within the
    window blocks the IP like any other critical threat."""
    gw = sgw()
    bad = mint("mallory", "admin", secret=OTHER_SECRET)
    for _ in range(9):
        assert_refused(sws.handshake(gw, token=bad, src="127.0.0.2"), 401)
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0
    assert_refused(sws.handshake(gw, headers={"X-API-Key": "guess"}, src="127.0.0.2"), 401)  # the 10th
    body = assert_refused(sws.handshake(gw, token=mint("alice", "viewer"), src="127.0.0.2"), 403)
    assert body["error"] == "ip_blocked", body
    m = get_metrics(gw)
    assert m["tickgate_blocked_ips"] == 1
    assert m['tickgate_security_violations_total{kind="auth_failed"}'] == 10
    sws.open(gw)  # 127.0.0.1 is not affected
    ev = wait_audit(gw, lambda ev: events_of(ev, "IP_BLOCKED"), what="IP_BLOCKED")
    assert [e["details"]["reason"] for e in events_of(ev, "IP_BLOCKED", ip="127.0.0.2")] == ["threat level critical"]
    failed = events_of(ev, "AUTH_FAILED", ip="127.0.0.2")
    assert len(failed) == 10 and {e["details"]["stage"] for e in failed} == {"handshake"}, failed
    kinds = [e["details"]["kind"] for e in events_of(ev, "SECURITY_VIOLATION", ip="127.0.0.2")]
    assert kinds == ["auth_failed"] * 10, kinds


def test_refused_api_credentials_block_the_ip(sgw, sws):
    """HTTP API refusals used to be neither audited nor counted: a 401
    (guessed key or token, or none) is an auth_failed violation, a 403
    (valid credentials, wrong role) a forbidden one."""
    gw = sgw()
    for i in range(4):
        r = api_from(gw, "127.0.0.3", "POST", "/api/publish", headers={"X-API-Key": "guess-%d" % i},
                     body={"updates": []})
        assert r.status == 401, r
    assert api_from(gw, "127.0.0.3", "POST", "/api/publish", body={"updates": []}).status == 401  # none
    for _ in range(4):
        r = api_from(gw, "127.0.0.3", "GET", "/api/admin/connections",
                     token=mint("root", "admin", secret=OTHER_SECRET))
        assert r.status == 401, r
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0
    # The 10th: a viewer on the admin API.
    assert api_from(gw, "127.0.0.3", "GET", "/api/admin/connections", token=mint("v", "viewer")).status == 403
    r = api_from(gw, "127.0.0.3", "GET", "/health")
    assert r.status == 403 and r.json()["error"] == "ip_blocked", r
    m = get_metrics(gw)
    assert m["tickgate_blocked_ips"] == 1
    assert m['tickgate_security_violations_total{kind="auth_failed"}'] == 9
    assert m['tickgate_security_violations_total{kind="forbidden"}'] == 1
    ev = wait_audit(gw, lambda ev: events_of(ev, "IP_BLOCKED"), what="IP_BLOCKED")
    failed = events_of(ev, "AUTH_FAILED", ip="127.0.0.3")
    assert [(e["details"]["stage"], e["details"]["status"]) for e in failed] == \
        [("api", 401)] * 5 + [("admin_api", 401)] * 4, failed
    viol = events_of(ev, "SECURITY_VIOLATION", ip="127.0.0.3")
    assert [e["details"]["kind"] for e in viol] == ["auth_failed"] * 9 + ["forbidden"], viol
    assert viol[-1]["user_id"] == "v", viol[-1]
    assert [e["ip"] for e in events_of(ev, "IP_BLOCKED")] == ["127.0.0.3"]


# ---------------------------------------------------------------------------
# blocked IPs from the config
# ---------------------------------------------------------------------------

def test_blocked_ips_from_config(sgw, sws):
    gw = sgw("--security.blocked_ips=127.0.0.3")
    body = assert_refused(sws.handshake(gw, src="127.0.0.3"), 403)
    assert body["error"] == "ip_blocked", body
    assert sws.open(gw, src="127.0.0.1").hello["role"] == "anonymous"
    assert sws.open(gw, src="127.0.0.2").hello["role"] == "anonymous"
    assert get_metrics(gw)["tickgate_blocked_ips"] == 1


def test_blocked_ip_refused_on_every_path(sgw, sws):
    """A blocked IP used to be refused only on /ws and the admin API; now
    every path answers it 403 ip_blocked (docs/security.md)."""
    gw = sgw("--security.blocked_ips=127.0.0.2")
    pub, adm = mint("pub", "publisher"), mint("adm", "admin")
    requests = [("GET", "/health", None, None), ("GET", "/metrics", None, None), ("GET", "/api/stats", None, None),
                ("GET", "/", None, None), ("GET", "/app.js", None, None), ("GET", "/nosuch", None, None),
                ("POST", "/api/publish", pub, {"updates": [{"symbol": "AAPL", "price": 1.0}]}),
                ("GET", "/api/admin/connections", adm, None)]
    for method, path, token, body in requests:
        r = api_from(gw, "127.0.0.2", method, path, token=token, body=body)
        assert r.status == 403 and r.json()["error"] == "ip_blocked", (path, r)
        assert api_from(gw, "127.0.0.1", method, path, token=token, body=body).status in (200, 404), path
    for path in ("/ws", "/echo"):
        body = assert_refused(sws.handshake(gw, src="127.0.0.2", path=path), 403)
        assert body["error"] == "ip_blocked", (path, body)


def test_block_closes_every_connection_of_the_ip(sgw, sws):
    """A block closes the IP's echo WebSockets (1008) and keep-alive HTTP
    connections too, not only its /ws clients."""
    gw = sgw()
    ws = sws.open(gw, src="127.0.0.3")
    echo = sws.raw(gw, src="127.0.0.3")
    echo.open("/echo")
    keep = sws.raw(gw, src="127.0.0.3")
    assert keep.request("GET", "/health").status == 200
    r = api(gw, "POST", "/api/admin/block_ip", token=mint("adm", "admin"), body={"ip": "127.0.0.3"})
    assert r.status == 200, r
    ws.raw.expect_close(1008, allow_data=False)
    echo.expect_close(1008, allow_data=False)
    keep.wait_closed(timeout=5)


def ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.bind(("::1", 0))
        srv.listen(1)
        c = socket.create_connection(("::1", srv.getsockname()[1]), timeout=2)
        c.close()
        srv.close()
        return True
    except OSError:
        return False


def test_blocked_ipv6_from_config(sgw, sws):
    if not ipv6_loopback():
        pytest.skip("IPv6 loopback (::1) is not available here")
    gw = sgw("--security.blocked_ips=::1", listen="[::1]:0")
    assert gw.host == "::1"
    # Reachable over IPv6, and refused on every path.
    assert api(gw, "GET", "/health").json()["error"] == "ip_blocked"
    body = assert_refused(sws.handshake(gw), 403)
    assert body["error"] == "ip_blocked", body
    # The same address in another spelling is the same IP.
    gw2 = sgw("--security.blocked_ips=0:0:0:0:0:0:0:1", listen="[::1]:0")
    assert_refused(sws.handshake(gw2), 403)
    # An IPv6 address blocks its /64 (limits.ipv6_prefix_len): ::2 blocks ::1,
    # as does the prefix itself; another /64 does not.
    gw3 = sgw("--security.blocked_ips=::2", listen="[::1]:0")
    assert_refused(sws.handshake(gw3), 403)
    gw4 = sgw("--security.blocked_ips=::/64", listen="[::1]:0")
    assert_refused(sws.handshake(gw4), 403)
    gw5 = sgw("--security.blocked_ips=0:0:0:1::1", listen="[::1]:0")
    assert sws.open(gw5).hello["role"] == "anonymous"
    # Per address again with /128: ::2 does not block ::1.
    gw6 = sgw("--security.blocked_ips=::2", "--limits.ipv6_prefix_len=128", listen="[::1]:0")
    assert sws.open(gw6).hello["role"] == "anonymous"


# ---------------------------------------------------------------------------
# trusted proxies and X-Forwarded-For
# ---------------------------------------------------------------------------

def xff(v):
    return {"X-Forwarded-For": v}


def test_trusted_proxy_xff_names_client(sgw, sws):
    gw = sgw("--server.trusted_proxies=127.0.0.1/32", "--limits.max_connections_per_ip=1")
    sws.open(gw, headers=xff("203.0.113.5"))
    sws.open(gw, headers=xff("203.0.113.6"))
    assert_refused(sws.handshake(gw, headers=xff("203.0.113.5")), 429)
    # A forged left-most entry does not help: the right-most untrusted one counts.
    assert_refused(sws.handshake(gw, headers=xff("1.2.3.4, 203.0.113.5")), 429)
    # Trusted hops on the right are skipped.
    assert_refused(sws.handshake(gw, headers=xff("203.0.113.6, 127.0.0.1")), 429)
    sws.open(gw, headers=xff("203.0.113.5, 203.0.113.7"))
    # Without the header the proxy itself is the client (127.0.0.1: free).
    sws.open(gw)
    r = api(gw, "GET", "/api/admin/connections", token=mint("adm", "admin"), headers=xff("203.0.113.99"))
    assert r.status == 200, r
    ips = sorted(c["ip"] for c in r.json()["connections"])
    assert ips == ["127.0.0.1", "203.0.113.5", "203.0.113.6", "203.0.113.7"], ips


def test_trusted_proxy_xff_block(sgw, sws):
    """A block names the real client, not the proxy."""
    gw = sgw("--server.trusted_proxies=127.0.0.1/32")
    victim = sws.open(gw, headers=xff("203.0.113.9"))
    r = api(gw, "POST", "/api/admin/block_ip", token=mint("adm", "admin"), body={"ip": "203.0.113.9"})
    assert r.status == 200, r
    victim.raw.expect_close(1008)
    assert_refused(sws.handshake(gw, headers=xff("203.0.113.9")), 403)
    sws.open(gw, headers=xff("203.0.113.10"))
    sws.open(gw)


def test_trusted_proxy_xff_in_two_header_lines(sgw, sws):
    """A proxy that appends its own X-Forwarded-For line (HAProxy's
    option forwardfor) leaves the client's forged line first. Several lines
    are one comma-joined list (RFC 9110 5.3): the right-most untrusted
    address is still the client."""
    gw = sgw("--server.trusted_proxies=127.0.0.1/32", "--limits.max_connections_per_ip=1")
    sws.open(gw, headers=xff("203.0.113.5"))

    def upgrade_two_lines(first, second):
        c = sws.raw(gw)
        c.send(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                "X-Forwarded-For: %s\r\nX-Forwarded-For: %s\r\n\r\n" % (wsraw.new_key(), first, second)).encode())
        return c.read_response()

    # The real client (right-most) already holds its one connection.
    assert_refused(upgrade_two_lines("1.2.3.4", "203.0.113.5"), 429)


def test_xff_ignored_without_trusted_proxies(sgw, sws):
    gw = sgw("--limits.max_connections_per_ip=1")
    sws.open(gw, headers=xff("203.0.113.5"))
    assert_refused(sws.handshake(gw, headers=xff("203.0.113.6")), 429)
    assert_refused(sws.handshake(gw), 429)
    # 127.0.0.1 holds its one connection: the admin asks from another IP.
    r = api_from(gw, "127.0.0.2", "GET", "/api/admin/connections", token=mint("adm", "admin"))
    assert [c["ip"] for c in r.json()["connections"]] == ["127.0.0.1"], r


def test_xff_from_untrusted_peer_ignored(sgw, sws):
    gw = sgw("--server.trusted_proxies=10.0.0.0/8", "--limits.max_connections_per_ip=1")
    sws.open(gw, headers=xff("203.0.113.5"))
    assert_refused(sws.handshake(gw, headers=xff("203.0.113.6")), 429)


# ---------------------------------------------------------------------------
# Origin allowlist, header and request limits
# ---------------------------------------------------------------------------

def test_origin_allowlist(sgw, sws):
    gw = sgw("--server.allowed_origins=https://good.example,https://also.example")
    body = assert_refused(sws.handshake(gw, headers={"Origin": "https://evil.example"}), 403)
    assert body["error"] == "origin_not_allowed", body
    assert_refused(sws.handshake(gw, headers={"Origin": "https://good.example.evil.example"}), 403)
    assert_refused(sws.handshake(gw, headers={"Origin": "http://good.example"}), 403)
    sws.open(gw, headers={"Origin": "https://good.example"})
    sws.open(gw, headers={"Origin": "https://also.example"})
    sws.open(gw)  # no Origin (not a browser): allowed


def test_header_too_large_431_on_upgrade(sgw, sws):
    gw = sgw()
    resp = sws.handshake(gw, headers={"X-Big": "a" * (20 * 1024)})
    assert resp.status == 431, resp
    sws.open(gw, headers={"X-Fine": "a" * 8000})


def test_slowloris_upgrade_closed(sgw):
    gw = sgw("--server.handshake_timeout_ms=500")
    c = BoundWS(gw.host, gw.port)
    try:
        c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        t0 = time.monotonic()
        c.wait_closed(timeout=5, allow_data=True)
        assert time.monotonic() - t0 < 3
    finally:
        c.close()
    assert api(gw, "GET", "/health").status == 200


# ---------------------------------------------------------------------------
# users file and SIGHUP
# ---------------------------------------------------------------------------

def hash_key(key):
    p = subprocess.run([tickgate_bin(), "hash-key", key], capture_output=True, env=child_env(), timeout=10)
    assert p.returncode == 0, p
    out = p.stdout.decode().strip()
    assert out.startswith("sha256:") and len(out) == 71, out
    return out


def write_users(path, users):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"users": users}, f)
    os.replace(tmp, path)


def test_users_file_and_sighup_reload(sgw, sws, tmp_path):
    key = "u1-secret-api-key-7f3a9c"
    path = str(tmp_path / "users.json")
    u1 = {"id": "u1", "username": "alice", "role": "trader", "active": True, "api_keys": [hash_key(key)]}
    write_users(path, [u1])
    gw = sgw("--auth.users_file=" + path)
    by_key = sws.open(gw, headers={"X-API-Key": key})
    assert (by_key.hello["user_id"], by_key.hello["role"]) == ("u1", "trader"), by_key.hello
    # The file's role wins over the token's.
    by_jwt = sws.open(gw, token=mint("u1", "admin"))
    assert (by_jwt.hello["user_id"], by_jwt.hello["role"]) == ("u1", "trader"), by_jwt.hello
    # sub not in the file: 403.
    assert_refused(sws.handshake(gw, token=mint("ghost", "trader")), 403)
    assert_refused(sws.handshake(gw, headers={"X-API-Key": "wrong-key"}), 401)

    u1["active"] = False
    write_users(path, [u1])
    gw.send_signal(signal.SIGHUP)

    def refused():
        r = sws.handshake(gw, token=mint("u1", "trader"))
        assert r.status in (101, 403), r
        return r.status == 403

    wait_until(refused, timeout=5, what="u1 refused after SIGHUP", interval=0.05)
    assert_refused(sws.handshake(gw, token=mint("u1", "trader")), 403)
    assert_refused(sws.handshake(gw, headers={"X-API-Key": key}), 403)
    # Connections already open stay open and are served.
    assert by_key.request({"type": "heartbeat", "id": 1})["type"] == "heartbeat_ack"
    assert by_jwt.request({"type": "heartbeat", "id": 2})["type"] == "heartbeat_ack"
    m = get_metrics(gw)
    assert m['tickgate_auth_failures_total{reason="inactive_user"}'] >= 2
    assert m['tickgate_auth_failures_total{reason="unknown_user"}'] == 1

    # A broken file on reload keeps the previous table (u1 still inactive).
    with open(path, "w") as f:
        f.write("{not json")
    gw.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in gw.stderr, timeout=5, what="reload failure logged")
    assert_refused(sws.handshake(gw, token=mint("u1", "trader")), 403)
    # Reactivated: admitted again.
    u1["active"] = True
    write_users(path, [u1])
    gw.send_signal(signal.SIGHUP)
    wait_until(lambda: sws.handshake(gw, token=mint("u1", "trader")).status == 101, timeout=5,
               what="u1 admitted after reactivation", interval=0.05)
    assert key not in gw.stderr + gw.stdout


# ---------------------------------------------------------------------------
# token expiry while connected
# ---------------------------------------------------------------------------

def test_token_expiry_refresh_keeps_connection(sgw, sws):
    gw = sgw("--auth.jwt_leeway_s=0", "--limits.sweep_interval_s=1")
    exp = int(time.time()) + 2
    stay = sws.open(gw, token=mint("refresher", "trader", exp=exp))
    w = stay.recv(timeout=2)
    assert w == {"type": "token_expiring", "expires_at": exp * 1000}, w
    lapse = sws.open(gw, token=mint("lapser", "trader", exp=exp))
    assert lapse.recv(timeout=2) == {"type": "token_expiring", "expires_at": exp * 1000}
    r = stay.request({"type": "authenticate", "token": mint("refresher", "trader", ttl=3600), "id": "re"})
    assert r == {"type": "authenticated", "user_id": "refresher", "role": "trader", "id": "re"}, r
    # The one that did not re-authenticate: closed 4001 after exp.
    lapse.raw.expect_close(4001, timeout=10)
    assert time.time() >= exp
    # The refreshed one stays well past the old exp (sweeps every second).
    until = max(time.time(), exp) + 2.5
    n = 0
    while time.time() < until:
        n += 1
        r = stay.request({"type": "heartbeat", "id": n}, timeout=2)
        assert r["type"] == "heartbeat_ack", r
        time.sleep(0.25)
    m = get_metrics(gw)
    assert m['tickgate_disconnections_total{reason="token_expired"}'] == 1
    assert m['tickgate_connections{role="trader"}'] == 1
