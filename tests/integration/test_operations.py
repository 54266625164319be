"""Operations (PROTOCOL.md section 15): /ready, the lame-duck drain, the
metrics token, structured and rate-limited logs, SIGHUP reload (all or
nothing)."""
import json
import os
import re
import signal
import socket
import time

import pytest

import wsraw
from conftest import SECRET, SECRET_FLAG, http_json, mint, parse_metrics, wait_log, wait_until

GOING_AWAY = 1001


def ready(gw):
    r = http_json(gw, "GET", "/ready")
    assert r.status in (200, 503), r
    return r.status, r.json()


# ---------------------------------------------------------------------------
# /ready
# ---------------------------------------------------------------------------

def test_ready_once_listening_and_health_unchanged(gateway):
    gw = gateway()
    assert ready(gw) == (200, {"ready": True})
    assert http_json(gw, "GET", "/health").status == 200
    assert http_json(gw, "HEAD", "/ready").status == 200
    r = http_json(gw, "POST", "/ready")
    assert r.status == 405 and "GET" in r.headers.get("allow", ""), r


def test_ready_waits_for_the_first_redis_sync_then_ignores_outages(gateway, tmp_path):
    from redis_helpers import RedisServer, free_port
    port = free_port()
    gw = gateway(SECRET_FLAG, "--redis.url=redis://127.0.0.1:%d/0" % port, "--redis.reconnect_max_ms=200",
                 "--feed.simulator=false")
    st, body = ready(gw)
    assert st == 503 and body == {"ready": False, "reason": "redis_sync"}, body
    # WebSocket upgrades are served meanwhile.
    raw = wsraw.WSRaw(gw.host, gw.port)
    try:
        raw.open("/ws")
    finally:
        raw.close()
    srv = RedisServer(tmp_path, port).start()
    try:
        wait_until(lambda: ready(gw)[0] == 200, 10, "/ready 200 after Redis came up")
        srv.kill()
        wait_until(lambda: http_json(gw, "GET", "/health").json()["checks"]["redis"] == "down", 10, "redis down")
        assert ready(gw) == (200, {"ready": True})
    finally:
        srv.kill()


# ---------------------------------------------------------------------------
# drain
# ---------------------------------------------------------------------------

def test_drain_advises_reconnect_with_jitter_and_spreads_closes(gateway, jclients):
    grace_ms = 2000
    gw = gateway(SECRET_FLAG, "--server.shutdown_grace_ms=%d" % grace_ms, "--server.workers=1",
                 "--limits.max_connections_per_ip=1000")
    n = 16
    conns = [jclients.open(gw) for _ in range(n)]
    http = socket.create_connection((gw.host, gw.port))  # a keep-alive HTTP client, open across the drain
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    advice = []
    for c in conns:
        m, _ = c.until(lambda m: m.get("type") == "reconnect", timeout=5, what="reconnect advisory")
        assert set(m) == {"type", "after_ms"}, m
        assert isinstance(m["after_ms"], int) and 0 <= m["after_ms"] <= grace_ms // 2, m
        advice.append(m["after_ms"])
    assert len(set(advice)) > 1, "no jitter: every client was told %r" % advice
    # Draining: /ready 503 at once, upgrades 503, plain HTTP answered.
    st, body = ready(gw)
    assert st == 503 and body["reason"] == "draining", body
    r = wsraw.WSRaw(gw.host, gw.port).handshake("/ws")
    assert r.status == 503, r
    http.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http.recv(65536).startswith(b"HTTP/1.1 200"), "plain HTTP not answered while draining"
    http.close()
    closed_at = []
    for c in conns:
        c.raw.expect_close(GOING_AWAY, timeout=grace_ms / 1000 + 3)
        closed_at.append(time.monotonic() - t0)
    # The server closes a share of its clients per 100 ms over 3/4 of the
    # grace: the last cannot go before about 1.4 s (a lower bound, whatever
    # this machine's speed).
    assert max(closed_at) >= 1.0, "closes were not spread: %r" % closed_at
    rc = gw.wait(grace_ms / 1000 + 3)
    assert rc == 0, gw.output()
    assert re.search(r"draining", gw.stderr), gw.stderr


def test_drain_without_clients_exits_at_once(gateway):
    gw = gateway("--server.shutdown_grace_ms=20000")
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(5) == 0, gw.output()


# ---------------------------------------------------------------------------
# metrics token
# ---------------------------------------------------------------------------

def test_metrics_token(gateway):
    token = "metrics-token-0123456789"
    gw = gateway("--server.metrics_token=" + token)
    for h in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer " + token + "x"},
              {"Authorization": "Bearer " + token[:-1]}, {"Authorization": "Basic " + token}):
        r = http_json(gw, "GET", "/metrics", h)
        assert r.status == 401, (h, r)
        assert token not in r.body.decode(), r
    r = http_json(gw, "GET", "/metrics", {"Authorization": "Bearer " + token})
    assert r.status == 200 and "tickgate_connections_total" in parse_metrics(r.body.decode()), r
    assert http_json(gw, "GET", "/health").status == 200
    assert token not in gw.stderr and token not in gw.stdout


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_json_log_lines(gateway):
    gw = gateway(SECRET_FLAG, "--log.format=json")
    wait_log(gw, r'"msg":"\d+ worker')
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(10) == 0
    lines = [l for l in gw.stderr.splitlines() if l.strip()]
    assert lines
    for l in lines:
        o = json.loads(l)
        assert TS.match(o["ts"]), o
        assert o["level"] in ("debug", "info", "warn", "error"), o
        assert isinstance(o["msg"], str) and o["msg"], o
    assert any(json.loads(l).get("shutdown_grace_ms") for l in lines), "no fields in the drain line"
    assert SECRET not in gw.stderr


def test_log_level_warn_hides_info(gateway):
    gw = gateway("--log.level=warn", "--server.static_dir=/tmp")  # a warning: no index.html in /tmp
    wait_log(gw, r" warn server.static_dir")
    assert " info " not in gw.stderr, gw.stderr


def test_redis_outage_does_not_log_a_line_per_failure(gateway):
    from redis_helpers import free_port
    gw = gateway(SECRET_FLAG, "--redis.url=redis://127.0.0.1:%d/0" % free_port(), "--redis.reconnect_max_ms=100",
                 "--feed.simulator=false")

    def errors():
        m = parse_metrics(http_json(gw, "GET", "/metrics").body.decode())
        return m["tickgate_redis_errors_total"] >= 20 and m

    wait_until(errors, 30, "20 Redis errors")
    lines = [l for l in gw.stderr.splitlines() if "redis" in l]
    assert len(lines) <= 6, "a line per failure:\n" + "\n".join(lines)


# ---------------------------------------------------------------------------
# SIGHUP reload
# ---------------------------------------------------------------------------

def write(path, text):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def users_json(*ids):
    return json.dumps({"users": [{"id": i, "role": "viewer"} for i in ids]})


def hup_and_wait(gw, pattern):
    start = len(gw.stderr.splitlines())
    gw.send_signal(signal.SIGHUP)
    return wait_log(gw, pattern, start=start)


def test_reload_users_limits_and_failure_changes_nothing(gateway, jclients, tmp_path):
    users = tmp_path / "users.json"
    ini = tmp_path / "tickgate.ini"
    write(users, users_json("alice"))
    write(ini, "[limits]\nviewer_max_symbols = 1\n")
    gw = gateway(SECRET_FLAG, "--config=%s" % ini, "--auth.users_file=%s" % users, "--feed.simulator=false")
    bob = mint("bob")
    assert jclients.handshake(gw, token=bob).status == 403
    alice = jclients.open(gw, token=mint("alice"))
    r = alice.request({"type": "subscribe", "symbols": ["AAPL", "MSFT"]})
    assert r["type"] in ("subscription_failed", "error") or r.get("symbols") == ["AAPL"], r

    # A good reload: bob known, two symbols allowed; alice stays connected.
    write(users, users_json("alice", "bob"))
    write(ini, "[limits]\nviewer_max_symbols = 5\n")
    line = hup_and_wait(gw, r"configuration reloaded|reload failed")
    assert "configuration reloaded" in line, gw.stderr
    assert jclients.handshake(gw, token=bob).status == 101
    alice.fence()
    fresh = jclients.open(gw, token=mint("alice"))
    assert set(fresh.subscribe(["AAPL", "MSFT"])["symbols"]) == {"AAPL", "MSFT"}

    # A bad file beside a good change: nothing applied, the reason logged at error.
    write(users, users_json("alice"))  # would remove bob
    write(ini, "[limits]\nviewer_max_symbols = many\n")
    line = hup_and_wait(gw, r"configuration reloaded|reload failed")
    assert "reload failed" in line and "viewer_max_symbols" in line and " error " in line, line
    assert jclients.handshake(gw, token=bob).status == 101, "users changed by a failed reload"
    again = jclients.open(gw, token=mint("alice"))
    assert len(again.subscribe(["AAPL", "MSFT", "GOOGL"])["symbols"]) == 3, "limits changed by a failed reload"

    # A broken users file: same.
    write(ini, "[limits]\nviewer_max_symbols = 1\n")
    write(users, "{not json")
    line = hup_and_wait(gw, r"configuration reloaded|reload failed")
    assert "reload failed" in line and "users" in line, line
    assert jclients.handshake(gw, token=bob).status == 101
    alice.fence()
    m = parse_metrics(http_json(gw, "GET", "/metrics").body.decode())
    assert m['tickgate_config_reloads_total{result="applied"}'] == 1, m
    assert m['tickgate_config_reloads_total{result="refused"}'] == 2, m


def test_reload_warns_about_keys_it_cannot_apply(gateway, tmp_path):
    ini = tmp_path / "tickgate.ini"
    write(ini, "[log]\nlevel = info\n")
    gw = gateway("--config=%s" % ini)
    write(ini, "[log]\nlevel = debug\n[server]\nworkers = 3\n")
    line = hup_and_wait(gw, r"configuration reloaded|reload failed")
    assert "configuration reloaded" in line
    wait_log(gw, r"warn changed key not reloaded.*key=server.workers")


# ---------------------------------------------------------------------------
# Prometheus conventions
# ---------------------------------------------------------------------------

def test_metric_names_follow_prometheus_conventions(gateway):
    gw = gateway()
    text = http_json(gw, "GET", "/metrics").body.decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types
    for name, typ in types.items():
        assert re.fullmatch(r"tickgate_[a-z0-9_]+", name), name
        if typ == "counter":
            assert name.endswith("_total"), "counter without _total: %s" % name
        else:
            assert not name.endswith("_total"), "%s %s ends in _total" % (typ, name)
        if re.search(r"(time|latency|duration|seconds|_ms\b|_us\b)", name):
            assert "_seconds" in name, "time in a unit other than seconds: %s" % name
    m = parse_metrics(text)
    les = [float(k[len('tickgate_fanout_seconds_bucket{le="'):-2]) for k in m
           if k.startswith("tickgate_fanout_seconds_bucket") and "+Inf" not in k]
    assert len([b for b in les if b < 1e-3]) >= 8, "too few sub-millisecond buckets: %r" % les
    assert min(les) <= 2e-6, les
    assert m["tickgate_ready"] == 1


def test_grafana_dashboard_names_only_metrics_we_export(gateway):
    from conftest import ROOT
    dash = json.load(open(os.path.join(ROOT, "contrib", "grafana", "tickgate.json")))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set(re.findall(r"\b(tickgate_[a-z0-9_]+)", " ".join(exprs)))
    gw = gateway()
    text = http_json(gw, "GET", "/metrics").body.decode()
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    exported |= {n + "_bucket" for n in exported}
    assert used and used <= exported, used - exported
