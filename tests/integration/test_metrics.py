"""Observability (contract section 8): /metrics in the Prometheus text
format 0.0.4, /api/stats with the same figures as JSON, and /health; the
figures follow what clients do."""
import re
import time

import pytest

from conftest import get_metrics, get_stats, http_json, mint, parse_metrics, wait_metrics
from conftest import OTHER_SECRET

ROLES = ["super_admin", "admin", "analyst", "trader", "viewer", "publisher", "anonymous"]

FAMILIES = {
    "connections": "gauge",
    "connections_total": "counter",
    "disconnections_total": "counter",
    "messages_received_total": "counter",
    "messages_sent_total": "counter",
    "bytes_sent_total": "counter",
    "subscriptions": "gauge",
    "active_streams": "gauge",
    "ticks_published_total": "counter",
    "fanout_seconds": "histogram",
    "rate_limited_total": "counter",
    "security_violations_total": "counter",
    "auth_failures_total": "counter",
    "slow_consumer_conflated_total": "counter",
    "slow_consumer_disconnects_total": "counter",
    "sweeper_last_run_timestamp_seconds": "gauge",
}

SAMPLE_RE = re.compile(r'^(tickgate_[a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                       r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? '
                       r'(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)$')


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) == "histogram":
            return base
    return None


def test_metrics_exposition_format(tickgate, clients):
    gw = tickgate()
    r = http_json(gw, "GET", "/metrics")
    assert r.status == 200, r
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    text = r.body.decode("utf-8")
    assert text.endswith("\n")
    types, helps, samples = {}, set(), []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in types, "duplicate TYPE for %s" % name
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = typ
        elif line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
        elif line.startswith("#") or not line:
            continue
        else:
            m = SAMPLE_RE.match(line)
            assert m, "not a valid sample line: %r" % line
            fam = family_of(m.group(1), types)
            assert fam, "sample before/without its TYPE line: %r" % line
            samples.append((m.group(1), m.group(2) or "", float(m.group(3))))
    for name, typ in FAMILIES.items():
        assert types.get("tickgate_" + name) == typ, "tickgate_%s: expected TYPE %s, got %r" \
            % (name, typ, types.get("tickgate_" + name))
        assert "tickgate_" + name in helps, "no HELP for tickgate_%s" % name
    keys = {n + l for n, l, _ in samples}
    assert len(keys) == len(samples), "duplicate samples"
    for role in ROLES:
        assert 'tickgate_connections{role="%s"}' % role in keys, role
    for prefix in ("tickgate_disconnections_total{reason=", "tickgate_messages_received_total{type=",
                   "tickgate_security_violations_total{kind=", "tickgate_auth_failures_total{reason="):
        assert any(k.startswith(prefix) for k in keys), prefix
    for t in ("heartbeat", "subscribe", "unsubscribe", "authenticate", "publish"):
        assert 'tickgate_messages_received_total{type="%s"}' % t in keys, t
    # The histogram: cumulative buckets ending in +Inf == _count.
    buckets = [(l, v) for n, l, v in samples if n == "tickgate_fanout_seconds_bucket"]
    assert buckets and buckets[-1][0] == '{le="+Inf"}', buckets
    values = [v for _, v in buckets]
    assert values == sorted(values)
    les = [float(l[5:-2]) for l, _ in buckets[:-1]]
    assert les == sorted(les) and len(set(les)) == len(les), les
    m = parse_metrics(text)
    assert m["tickgate_fanout_seconds_count"] == values[-1]
    assert "tickgate_fanout_seconds_sum" in m
    # A fresh gateway: nothing connected, nothing published.
    for k in ("tickgate_connections_total", "tickgate_subscriptions", "tickgate_active_streams",
              "tickgate_ticks_published_total", "tickgate_rate_limited_total",
              "tickgate_slow_consumer_conflated_total", "tickgate_slow_consumer_disconnects_total"):
        assert m[k] == 0, (k, m[k])
    assert abs(m["tickgate_sweeper_last_run_timestamp_seconds"] - time.time()) <= 5 + 3, m
    # HEAD: same headers, no body.
    c = clients.http(gw)
    h = c.request("HEAD", "/metrics")
    assert h.status == 200 and h.body == b"" and h.headers["content-type"] == ctype, h


def test_metrics_and_stats_follow_activity(tickgate, jclients):
    gw = tickgate()
    base = get_metrics(gw)
    a = jclients.open(gw)
    b = jclients.open(gw)
    t = jclients.open(gw, token=mint("t1", "trader"))
    pub = jclients.publisher(gw)
    # Two refused handshakes: counted as auth failures, not as connections.
    assert jclients.handshake(gw, token=mint("x", "viewer", secret=OTHER_SECRET)).status == 401
    assert jclients.handshake(gw, token=mint("y", "viewer", ttl=-3600)).status == 401

    a.subscribe(["AAPL", "MSFT"])
    t.subscribe(["AAPL"])
    b.subscribe(["AAPL"])
    assert b.request({"type": "unsubscribe", "symbols": ["AAPL"]})["type"] == "unsubscription_confirmed"
    assert pub.publish([{"symbol": "AAPL", "price": 190 + i} for i in range(3)]) == \
        {"type": "published", "count": 3}
    for _ in range(3):
        assert a.recv()["type"] == "price_update"
        assert t.recv()["type"] == "price_update"
    for i in range(2):
        assert a.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
    assert a.request({"type": "publish", "updates": []})["code"] == "forbidden"
    a.send("{not json")
    assert a.recv()["code"] == "invalid_json"

    m = get_metrics(gw)
    s = get_stats(gw)
    expect = {
        'tickgate_connections{role="anonymous"}': 2,
        'tickgate_connections{role="trader"}': 1,
        'tickgate_connections{role="publisher"}': 1,
        'tickgate_connections{role="viewer"}': 0,
        "tickgate_connections_total": 4,
        "tickgate_subscriptions": 3,
        "tickgate_active_streams": 2,
        "tickgate_ticks_published_total": 3,
        'tickgate_messages_received_total{type="subscribe"}': 3,
        'tickgate_messages_received_total{type="unsubscribe"}': 1,
        'tickgate_messages_received_total{type="heartbeat"}': 2,
        'tickgate_messages_received_total{type="publish"}': 2,
        'tickgate_messages_received_total{type="invalid"}': 1,
        'tickgate_security_violations_total{kind="forbidden"}': 1,
        'tickgate_security_violations_total{kind="invalid_message"}': 1,
        'tickgate_auth_failures_total{reason="invalid_token"}': 1,
        'tickgate_auth_failures_total{reason="expired"}': 1,
        "tickgate_rate_limited_total": 0,
    }
    for k, v in expect.items():
        assert m.get(k) == v, "%s: expected %s, got %s" % (k, v, m.get(k))
    assert m["tickgate_fanout_seconds_count"] >= 3, m
    assert m["tickgate_fanout_seconds_sum"] > 0, m
    assert m['tickgate_fanout_seconds_bucket{le="+Inf"}'] == m["tickgate_fanout_seconds_count"]
    # messages: 4 connected + 4 subscribe replies (1 confirmation + snapshots)...
    assert m["tickgate_messages_sent_total"] >= 4 + 3 + 3 + 6, m
    assert m["tickgate_bytes_sent_total"] > base["tickgate_bytes_sent_total"], m

    # /api/stats: the same figures as JSON.
    assert s["connections"] == {"super_admin": 0, "admin": 0, "analyst": 0, "trader": 1, "viewer": 0,
                                "publisher": 1, "anonymous": 2}, s
    assert s["connections_open"] == 4, s
    for k in ("connections_total", "subscriptions", "active_streams", "ticks_published_total",
              "rate_limited_total", "slow_consumer_conflated_total", "slow_consumer_disconnects_total"):
        assert s[k] == m["tickgate_" + k], (k, s[k], m["tickgate_" + k])
    for t_, v in s["messages_received_total"].items():
        assert m['tickgate_messages_received_total{type="%s"}' % t_] == v, t_
    for k_, v in s["security_violations_total"].items():
        assert m['tickgate_security_violations_total{kind="%s"}' % k_] == v, k_
    for r_, v in s["auth_failures_total"].items():
        assert m['tickgate_auth_failures_total{reason="%s"}' % r_] == v, r_
    for r_, v in s["disconnections_total"].items():
        assert m['tickgate_disconnections_total{reason="%s"}' % r_] == v, r_
    assert abs(s["sweeper_last_run_timestamp_seconds"] - m["tickgate_sweeper_last_run_timestamp_seconds"]) <= 5
    assert s["messages_sent_total"] >= m["tickgate_messages_sent_total"]

    # Disconnections by reason; gauges follow.
    a.raw.send_close(1000)
    a.raw.expect_close(1000, reply=False)
    b.raw.sock.close()
    m = wait_metrics(gw, lambda m: m['tickgate_connections{role="anonymous"}'] == 0, timeout=10,
                     what="anonymous connections released")
    assert m['tickgate_disconnections_total{reason="client_close"}'] == 1, m
    assert m['tickgate_disconnections_total{reason="network"}'] == 1, m
    assert m["tickgate_subscriptions"] == 1 and m["tickgate_active_streams"] == 1, m
    assert m["tickgate_connections_total"] == 4, m
    assert get_stats(gw)["connections_open"] == 2


def test_health(tickgate):
    gw = tickgate()
    r = http_json(gw, "GET", "/health")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json"), r
    h = r.json()
    assert h["status"] == "healthy", h
    assert h["checks"]["workers"] == "ok" and h["checks"]["sweeper"] == "ok", h
    assert h["checks"]["feed"] == "idle", h  # no simulator, nothing published yet
    r = http_json(gw, "POST", "/api/publish", {"Authorization": "Bearer " + mint("p", "publisher")},
                  b'{"updates": [{"symbol": "AAPL", "price": 190}]}')
    assert r.status == 200, r
    h = http_json(gw, "GET", "/health").json()
    assert h["status"] == "healthy" and h["checks"]["feed"] == "ok", h


def test_health_feed_ok_with_simulator(tickgate, jclients):
    gw = tickgate(simulator=True)
    ws = jclients.open(gw)
    ws.subscribe(["AAPL"])
    ws.until(lambda m: m.get("type") == "price_update" and "snapshot" not in m, timeout=5,
             what="a simulator tick")
    h = http_json(gw, "GET", "/health").json()
    assert h["status"] == "healthy" and h["checks"]["feed"] == "ok", h
    assert get_metrics(gw)["tickgate_ticks_published_total"] >= 1


def test_stats_json_shape(tickgate):
    gw = tickgate()
    r = http_json(gw, "GET", "/api/stats")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json"), r
    s = r.json()
    for k in ("connections", "connections_total", "disconnections_total", "messages_received_total",
              "messages_sent_total", "bytes_sent_total", "subscriptions", "active_streams",
              "ticks_published_total", "rate_limited_total", "security_violations_total", "auth_failures_total",
              "slow_consumer_conflated_total", "slow_consumer_disconnects_total",
              "sweeper_last_run_timestamp_seconds"):
        assert k in s, k
    assert set(s["connections"]) == set(ROLES), s["connections"]
    for k in ("connections", "disconnections_total", "messages_received_total", "security_violations_total",
              "auth_failures_total"):
        assert isinstance(s[k], dict) and all(isinstance(v, int) for v in s[k].values()), (k, s[k])


@pytest.mark.parametrize("path", ["/metrics", "/api/stats", "/health"])
def test_observability_endpoints_reject_post(tickgate, path):
    gw = tickgate()
    r = http_json(gw, "POST", path, body=b"{}")
    assert r.status == 405 and "GET" in r.headers.get("allow", ""), r
