"""Redis outages of every shape (docs/scaling.md, "When Redis fails"):
killed and restarted after several failed attempts, not up yet when the
gateway starts, stopped (SIGSTOP: a hung Redis), killed or stopped while
the gateway shuts down, its script cache flushed. Each test runs its own
redis-server processes; every wait awaits an event or polls state inside a
deadline."""
import json
import signal

from conftest import get_metrics, http_json, mint, wait_until
from redis_helpers import (  # noqa: F401  (fixtures are registered by import)
    RedisServer, gateway_args, health, rdb, redis_server, rgw, rws, unmanaged_gw, wait_redis_up)
from test_redis import P, expect_tick, numsub, publish_one


def redis_state(gw):
    return health(gw)["checks"]["redis"]


def wait_state(gw, want, timeout=10.0):
    return wait_until(lambda: redis_state(gw) == want, timeout, "checks.redis == %r" % want)


def wait_log_count(gw, text, n, timeout=10.0):
    wait_until(lambda: gw.stderr.count(text) >= n, timeout, "%d x %r on stderr" % (n, text))


def wait_failed_attempts(gw, n, timeout=10.0):
    """Waits until n more connection attempts failed: the first is logged
    ("connect failed"), the rest only counted in tickgate_redis_errors_total
    (repeated errors are rate-limited in the log, PROTOCOL.md section 15)."""
    wait_log_count(gw, "connect failed", 1, timeout)
    base = get_metrics(gw)["tickgate_redis_errors_total"]
    wait_until(lambda: get_metrics(gw)["tickgate_redis_errors_total"] >= base + n - 1, timeout,
               "%d more failed Redis attempts" % (n - 1))


def audit_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def stream_and_check(gw, rdb, rws, start_seq=0):
    """A subscriber and a publisher on gw; one tick goes through Redis
    (Redis's seq:AAPL moves with it). Returns (sub, pub, seq)."""
    sub = rws.open(gw, mint("v1", "viewer"))
    sub.subscribe(["AAPL"])
    pub = rws.open(gw, mint("pub1", "publisher"))
    wait_until(lambda: numsub(rdb, P + "tick:AAPL")[P + "tick:AAPL"] >= 1, 10, "node on tick:AAPL")
    publish_one(pub, "AAPL", 100, 1)
    m = sub.recv(5)
    assert m.get("type") == "price_update" and m["symbol"] == "AAPL", m
    assert int(rdb.get(P + "seq:AAPL")) == m["seq"], "the tick did not go through Redis"
    return sub, pub, m["seq"]


def test_reconnects_after_several_failed_attempts(redis_server, rdb, gateway, rws, tmp_path):
    """Redis down for several backoff periods, then back: the node keeps
    retrying, comes back up and serves through Redis again; SIGTERM then
    exits 0 with every CONNECTION_CLOSED in the audit log."""
    audit = tmp_path / "audit.log"
    gw = gateway(*gateway_args(redis_server, audit, "--redis.reconnect_max_ms=200"))
    wait_redis_up(gw)
    sub, pub, seq = stream_and_check(gw, rdb, rws)
    redis_server.kill()
    wait_state(gw, "down")
    wait_failed_attempts(gw, 3)
    redis_server.start()
    wait_state(gw, "up")
    rdb2 = redis_server.client()
    wait_until(lambda: numsub(rdb2, P + "tick:AAPL")[P + "tick:AAPL"] == 1, 10, "re-subscribed to tick:AAPL")
    publish_one(pub, "AAPL", 101, 2)
    expect_tick(sub, "AAPL", seq + 1, volume=2)
    assert int(rdb2.get(P + "seq:AAPL")) == seq + 1
    ids = {sub.hello["client_id"], pub.hello["client_id"]}
    assert gw.stop() == 0, gw.output()
    closed = {e.get("client_id") for e in audit_events(audit) if e.get("event") == "CONNECTION_CLOSED"}
    assert ids <= closed, "CONNECTION_CLOSED missing for %r" % (ids - closed)


def test_redis_started_after_the_gateway(tmp_path, gateway, rws):
    """Redis is not up when the gateway starts: it serves locally, keeps
    trying, and joins once Redis is there."""
    srv = RedisServer(tmp_path)
    gw = gateway(*gateway_args(srv, tmp_path / "audit.log", "--redis.reconnect_max_ms=200"))
    wait_failed_attempts(gw, 3)
    assert redis_state(gw) == "down"
    srv.start()
    try:
        wait_state(gw, "up")
        c = srv.client()
        stream_and_check(gw, c, rws)
        c.close()
    finally:
        gw.stop()
        srv.kill()


def test_sigterm_while_redis_down_and_retrying(redis_server, gateway, tmp_path):
    """SIGTERM after failed reconnects: no crash, exit 0."""
    gw = gateway(*gateway_args(redis_server, tmp_path / "audit.log", "--redis.reconnect_max_ms=200"))
    wait_redis_up(gw)
    redis_server.kill()
    wait_failed_attempts(gw, 2)
    assert gw.stop() == 0, gw.output()


def test_hung_redis_is_detected_and_local_delivery_goes_on(redis_server, rdb, gateway, rws, tmp_path):
    """SIGSTOP: the stall is detected within redis.timeout_ms (health
    degraded, redis_up 0), ticks published meanwhile reach the local
    subscriber in seq order, authenticated handshakes are admitted with the
    local count, and after SIGCONT nothing is delivered twice or out of
    order."""
    gw = gateway(*gateway_args(redis_server, tmp_path / "audit.log", "--redis.timeout_ms=500",
                               "--redis.reconnect_max_ms=200"))
    wait_redis_up(gw)
    sub, pub, seq = stream_and_check(gw, rdb, rws)
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(5):
            publish_one(pub, "AAPL", 110 + i, 10 + i)
        for i in range(5):
            expect_tick(sub, "AAPL", seq + 1 + i, timeout=10, volume=10 + i)
        seq += 5
        h = health(gw)
        assert h["checks"]["redis"] == "down" and h["status"] == "degraded", h
        assert get_metrics(gw)["tickgate_redis_up"] == 0
        wait_log_count(gw, "stalled", 1)
        late = rws.open(gw, mint("v2", "viewer"))  # admitted without Redis
        assert late.hello["type"] == "connected"
        for i in range(3):
            publish_one(pub, "AAPL", 120 + i, 20 + i)
            expect_tick(sub, "AAPL", seq + 1, volume=20 + i)
            seq += 1
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    wait_state(gw, "up")
    wait_until(lambda: numsub(rdb, P + "tick:AAPL")[P + "tick:AAPL"] == 1, 10, "re-subscribed to tick:AAPL")
    publish_one(pub, "AAPL", 130, 30)
    m = sub.recv(5)
    assert m["type"] == "price_update" and m["volume"] == 30 and m["seq"] > seq, m
    assert sub.fence() == [], "a tick arrived twice or out of order after SIGCONT"


def test_stalled_link_bounds_ticks_in_flight(redis_server, rdb, gateway, rws, tmp_path):
    """With a long timeout, the in-flight bound alone declares the link
    stalled: the ticks past it are delivered locally at once."""
    gw = gateway(*gateway_args(redis_server, tmp_path / "audit.log", "--redis.timeout_ms=60000",
                               "--redis.max_inflight=8"))
    wait_redis_up(gw)
    sub, pub, seq = stream_and_check(gw, rdb, rws)
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(20):
            publish_one(pub, "AAPL", 110 + i, i)
        got = [sub.recv(10) for _ in range(20)]
        assert [m["seq"] for m in got] == list(range(seq + 1, seq + 21)), got
        assert [m["volume"] for m in got] == list(range(20)), [(m["seq"], m["volume"]) for m in got]
        assert redis_state(gw) == "down"
        wait_log_count(gw, "stalled", 1)
    finally:
        redis_server.kill()


def test_sigterm_with_hung_redis_exits_in_time(redis_server, rdb, gateway, rws, tmp_path):
    """A stopped Redis must not hold the shutdown: exit 0 within the grace
    period, audit complete."""
    audit = tmp_path / "audit.log"
    gw = gateway(*gateway_args(redis_server, audit, "--server.shutdown_grace_ms=3000"))
    wait_redis_up(gw)
    sub, pub, _ = stream_and_check(gw, rdb, rws)
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        publish_one(pub, "AAPL", 111, 3)  # in flight on the stopped link
        assert gw.stop(timeout=6) == 0, gw.output()
    finally:
        redis_server.kill()
    closed = {e.get("client_id") for e in audit_events(audit) if e.get("event") == "CONNECTION_CLOSED"}
    assert {sub.hello["client_id"], pub.hello["client_id"]} <= closed


def test_redis_killed_during_shutdown(redis_server, rdb, gateway, rws, tmp_path):
    gw = gateway(*gateway_args(redis_server, tmp_path / "audit.log"))
    wait_redis_up(gw)
    stream_and_check(gw, rdb, rws)
    gw.send_signal(signal.SIGTERM)
    redis_server.kill()
    assert gw.stop() == 0, gw.output()


def test_scripts_are_loaded_once_and_survive_a_flush(redis_server, rdb, rgw, rws):
    """Ticks go as EVALSHA (the script text is not sent per tick); after
    SCRIPT FLUSH the next tick is still delivered."""
    gw = rgw(redis_server)
    rdb.config_resetstat()
    sub, pub, seq = stream_and_check(gw, rdb, rws)
    for i in range(5):
        publish_one(pub, "AAPL", 100 + i, i)
        expect_tick(sub, "AAPL", seq + 1 + i)
    stats = rdb.info("commandstats")
    assert stats.get("cmdstat_evalsha", {}).get("calls", 0) >= 6, stats
    assert "cmdstat_eval" not in stats, "ticks sent the script text: %r" % stats["cmdstat_eval"]
    rdb.script_flush()
    publish_one(pub, "AAPL", 200, 77)
    expect_tick(sub, "AAPL", seq + 6, volume=77)
    publish_one(pub, "AAPL", 201, 78)
    expect_tick(sub, "AAPL", seq + 7, volume=78)


def test_expired_blocks_are_pruned_from_redis(redis_server, rdb, rgw):
    rdb.hset(P + "blocked", mapping={"192.0.2.1": "1000", "192.0.2.2": "0", "192.0.2.3": "99999999999"})
    gw = rgw(redis_server)
    wait_until(lambda: not rdb.hexists(P + "blocked", "192.0.2.1"), 10, "expired block pruned")
    assert rdb.hget(P + "blocked", "192.0.2.2") == "0"
    assert rdb.hget(P + "blocked", "192.0.2.3") == "99999999999"
    assert http_json(gw, "GET", "/health").status == 200
