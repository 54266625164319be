"""Integration tests of tickgate's Redis engine (PROTOCOL.md section 9):
persistence hashes, node liveness and cleanup, cross-node fan-out with one
seq order per symbol, channel subscription only while there are local
subscribers, cluster-wide per-user limit and IP blocks, broadcasts through
Redis, and Redis failure (degraded, counted, logged, local service goes on,
state written back on reconnect).

Every test starts its own redis-server on a free loopback port (never 6379,
never a system Redis) and talks to it with python3-redis. Every wait is a
poll with a deadline."""
import json
import signal
import time

import pytest

from conftest import get_metrics, http_json, mint, wait_until
from wsraw import http_request
from redis_helpers import (  # noqa: F401  (fixtures are registered by import)
    api, health, node_id, rdb, redis_server, rgw, rws, unmanaged_gw)

P = "websocket:"


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def wait_hash(rdb, key, pred, timeout=5.0, what=None):
    """Polls HGETALL key until pred(hash) holds; returns the hash."""
    return wait_until(lambda: (lambda h: h if pred(h) else None)(rdb.hgetall(key)), timeout,
                      what or "condition on %s" % key)


def numsub(rdb, *channels):
    return dict(rdb.pubsub_numsub(*channels))


def tick_channels(rdb, prefix=P):
    return sorted(rdb.pubsub_channels(prefix + "tick:*"))


def close_ws(ws):
    """Client-initiated close handshake (1000) and wait for TCP close."""
    ws.raw.send_close(1000)
    ws.raw.expect_close(1000, reply=False)


def price_updates(ws, want, timeout=10.0):
    """Reads messages until want = {symbol: n} live price_updates arrived;
    any other message fails. Returns {symbol: [messages]}."""
    got = {s: [] for s in want}
    deadline = time.monotonic() + timeout
    while any(len(got[s]) < n for s, n in want.items()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("price updates missing after %.1f s: got %r of %r (seqs %r)"
                                 % (timeout, {s: len(v) for s, v in got.items()}, want,
                                    {s: [m["seq"] for m in v] for s, v in got.items()}))
        m = ws.recv(remaining)
        assert m.get("type") == "price_update", "expected only price updates, got %r" % m
        assert not m.get("snapshot"), "unexpected snapshot %r" % m
        assert m["symbol"] in want, "update for a symbol not subscribed: %r" % m
        got[m["symbol"]].append(m)
    return got


def expect_tick(ws, symbol, seq, timeout=5.0, **fields):
    m = ws.recv(timeout)
    assert m.get("type") == "price_update" and not m.get("snapshot"), "expected a live %s tick, got %r" % (symbol, m)
    assert m["symbol"] == symbol and m["seq"] == seq, "expected %s seq %d, got %r" % (symbol, seq, m)
    for k, v in fields.items():
        assert m.get(k) == v, "%s: expected %s=%r, got %r" % (symbol, k, v, m)
    return m


def publish_one(pub, symbol, price, volume, id_=None):
    r = pub.publish([{"symbol": symbol, "price": price, "volume": volume}], id=id_)
    assert r.get("type") == "published" and r.get("count") == 1, r
    return r


def ask(ws, obj, reply_type, timeout=5.0):
    """Sends obj and returns the first reply of reply_type, skipping price
    updates (a node catching up on a channel may deliver the latest tick)."""
    ws.send(obj)
    m, _ = ws.until(lambda m: m.get("type") != "price_update", timeout, reply_type)
    assert m.get("type") == reply_type, "expected %s, got %r" % (reply_type, m)
    return m


def connections_gauge(gw):
    return sum(v for k, v in get_metrics(gw).items() if k.startswith("tickgate_connections{"))


def spread_ids(gw, n=100):
    """Consumes n connection ids of gw with plain HTTP requests. This
    implementation's client ids are per-node counters ("c-<n>", see
    test_client_ids_unique_across_nodes), so two nodes hand out the same
    ids; tests about other behaviour move one node's counter away (with
    --server.workers=1) so that they check only what they name."""
    for _ in range(n):
        assert http_json(gw, "GET", "/health").status == 200


# ---------------------------------------------------------------------------
# 1. persistence
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", [None, "tg1:"], ids=["default-prefix", "prefix-tg1"])
def test_persistence_hashes_follow_node_state(redis_server, rdb, rgw, rws, prefix):
    flags = ["--redis.node_ttl_s=7"]
    if prefix:
        flags.append("--redis.key_prefix=" + prefix)
    p = prefix or P
    gw = rgw(redis_server, *flags)
    nid = node_id(rdb, gw, p)
    t0 = int(time.time() * 1000)

    a = rws.open(gw, mint("u1", "trader"))
    b = rws.open(gw, mint("u2", "viewer"))
    ca, cb = a.hello["client_id"], b.hello["client_id"]
    conns = wait_hash(rdb, p + "connections", lambda h: ca in h and cb in h, what="both clients in connections")
    for cid, user, role in ((ca, "u1", "trader"), (cb, "u2", "viewer")):
        v = json.loads(conns[cid])
        assert v["node"] == nid, v
        assert v["user_id"] == user and v["role"] == role, v
        assert v["ip"] == "127.0.0.1", v
        assert isinstance(v["connected_at"], int) and t0 - 5000 <= v["connected_at"] <= int(time.time() * 1000) + 5000, v

    a.subscribe(["AAPL", "MSFT"])
    subs = wait_hash(rdb, p + "subscriptions", lambda h: ca in h, what="subscriptions entry")
    assert sorted(json.loads(subs[ca])) == ["AAPL", "MSFT"], subs

    r = a.request({"type": "unsubscribe", "symbols": ["MSFT"]})
    assert r["type"] == "unsubscription_confirmed", r
    wait_hash(rdb, p + "subscriptions", lambda h: ca in h and json.loads(h[ca]) == ["AAPL"],
              what="subscriptions entry == ['AAPL'] after unsubscribe")

    # Node liveness: in the node set, with a liveness key that has a TTL.
    assert nid in rdb.smembers(p + "nodes")
    assert rdb.exists(p + "node:" + nid) == 1
    ttl = rdb.ttl(p + "node:" + nid)
    assert 0 < ttl <= 7, "liveness key TTL %r (node_ttl_s=7)" % ttl

    if prefix:
        # Every key and channel carries the prefix: nothing under the default one.
        wait_until(lambda: tick_channels(rdb, p) == [p + "tick:AAPL"], 5, "channel %stick:AAPL" % p)
        stray = [k for k in rdb.keys("*") if not k.startswith(p)]
        assert not stray, "keys without prefix %r: %r" % (p, stray)
        assert rdb.pubsub_channels(P + "*") == [], rdb.pubsub_channels("*")

    # One closes with a close handshake, the other just drops TCP.
    close_ws(a)
    b.raw.close()
    wait_until(lambda: not ({ca, cb} & set(rdb.hkeys(p + "connections"))), 5,
               "both clients removed from %sconnections" % p)
    wait_until(lambda: not ({ca, cb} & set(rdb.hkeys(p + "subscriptions"))), 5,
               "both clients removed from %ssubscriptions" % p)


# ---------------------------------------------------------------------------
# 2. multi-node fan-out with one seq order per symbol
# ---------------------------------------------------------------------------

def test_three_nodes_one_order_per_symbol(redis_server, rdb, rgw, rws):
    flags = ["--limits.max_connections_per_ip=200"]
    nodes = [rgw(redis_server, *flags) for _ in range(3)]
    subs = []  # (ws, node index, symbols)
    for i in range(30):
        node = i % 3
        syms = ["AAPL", "MSFT"] if i % 2 else ["AAPL"]
        ws = rws.open(nodes[node], mint("s%d" % i, "viewer"))
        ws.subscribe(syms)
        subs.append((ws, node, syms))
    pubs = [rws.open(nodes[k], mint("pub%d" % (k + 1), "publisher")) for k in range(3)]
    # Every node listens on both channels before anything is published.
    wait_until(lambda: numsub(rdb, P + "tick:AAPL", P + "tick:MSFT") == {P + "tick:AAPL": 3, P + "tick:MSFT": 3},
               5, "3 nodes subscribed to AAPL and MSFT channels")

    n = 50
    published = {"AAPL": [], "MSFT": []}  # (publisher, i, volume) in send order per publisher
    for i in range(n):
        sym = "AAPL" if i % 2 == 0 else "MSFT"
        for k, pub in enumerate(pubs):
            vol = (k + 1) * 1000 + i
            pub.send({"type": "publish", "id": "p%d-%d" % (k, i),
                      "updates": [{"symbol": sym, "price": round(100 + 10 * k + i * 0.01, 2), "volume": vol}]})
            published[sym].append((k, i, vol))
    for k, pub in enumerate(pubs):
        for i in range(n):
            r = pub.recv()
            assert (r.get("type"), r.get("count"), r.get("id")) == ("published", 1, "p%d-%d" % (k, i)), r
    want_all = {s: len(v) for s, v in published.items()}  # 75 each

    orders = {"AAPL": None, "MSFT": None}
    for idx, (ws, node, syms) in enumerate(subs):
        got = price_updates(ws, {s: want_all[s] for s in syms})
        for s in syms:
            seqs = [m["seq"] for m in got[s]]
            assert seqs == list(range(1, want_all[s] + 1)), \
                "subscriber %d on node %d: %s seqs not 1..%d in order: %r" % (idx, node + 1, s, want_all[s], seqs)
            order = [int(m["volume"]) for m in got[s]]
            if orders[s] is None:
                orders[s] = order
            assert order == orders[s], \
                "subscriber %d on node %d sees another %s order than subscriber 0" % (idx, node + 1, s)
    for s, order in orders.items():
        assert sorted(order) == sorted(v for _, _, v in published[s]), "%s: ticks lost or duplicated" % s
        for k in range(3):  # one publisher's ticks keep their order
            mine = [v for v in order if v // 1000 == k + 1]
            assert mine == sorted(mine), "%s: publisher %d's ticks reordered: %r" % (s, k + 1, mine)

    # POST /api/publish on node 3 reaches every subscriber (node 1 included), next seq.
    r = api(nodes[2], "POST", "/api/publish", mint("pub9", "publisher"),
            {"updates": [{"symbol": "AAPL", "price": 321.5, "volume": 777777}]})
    assert r.status == 200 and r.json()["published"] == 1, r
    for idx, (ws, node, syms) in enumerate(subs):
        expect_tick(ws, "AAPL", want_all["AAPL"] + 1, volume=777777, price=321.5)
    assert wait_until(lambda: rdb.get(P + "seq:AAPL"), 2, "seq key") == str(want_all["AAPL"] + 1)


# ---------------------------------------------------------------------------
# 3. a node listens on a symbol's channel only while it has local subscribers
# ---------------------------------------------------------------------------

def test_channel_subscribed_only_while_local_subscribers(redis_server, rdb, rgw, rws):
    g1, g2 = rgw(redis_server), rgw(redis_server)
    ch = P + "tick:AAPL"
    assert tick_channels(rdb) == [], "tick channels with no subscriber: %r" % tick_channels(rdb)

    # A publisher connection alone subscribes to nothing.
    pub = rws.open(g1, mint("pub1", "publisher"))
    publish_one(pub, "AAPL", 190.0, 1)
    assert tick_channels(rdb) == []

    a = rws.open(g1)  # anonymous
    a.subscribe(["AAPL"])
    wait_until(lambda: numsub(rdb, ch)[ch] == 1, 5, "node 1 on %s" % ch)
    assert tick_channels(rdb) == [ch]

    b = rws.open(g2, mint("v2", "viewer"))
    b.subscribe(["AAPL"])
    c = rws.open(g2, mint("v3", "viewer"))
    c.subscribe(["AAPL"])
    wait_until(lambda: numsub(rdb, ch)[ch] == 2, 5, "nodes 1 and 2 on %s (one subscription per node)" % ch)

    ask(a, {"type": "unsubscribe", "symbols": ["AAPL"]}, "unsubscription_confirmed")
    wait_until(lambda: numsub(rdb, ch)[ch] == 1, 5, "node 1 off %s after its last unsubscribe" % ch)

    b.raw.close()  # node 2 still has c on AAPL
    wait_until(lambda: connections_gauge(g2) == 1, 5, "node 2 saw b leave")
    # A later channel change of node 2 is a fence: b's leave was handled before it.
    ask(c, {"type": "subscribe", "symbols": ["MSFT"]}, "subscription_confirmed")
    wait_until(lambda: numsub(rdb, P + "tick:MSFT")[P + "tick:MSFT"] == 1, 5, "node 2 on tick:MSFT")
    assert numsub(rdb, ch)[ch] == 1, "node 2 left %s although c still subscribes to it" % ch

    ask(c, {"type": "unsubscribe", "symbols": ["AAPL"]}, "unsubscription_confirmed")
    wait_until(lambda: tick_channels(rdb) == [P + "tick:MSFT"], 5, "%s gone after every subscriber left" % ch)
    c.raw.close()  # a disconnect (no unsubscribe) ends it too
    wait_until(lambda: tick_channels(rdb) == [], 5, "no tick channel after the last subscriber disconnected")

    # Subscribing again subscribes the channel again.
    ask(a, {"type": "subscribe", "symbols": ["AAPL"]}, "subscription_confirmed")
    wait_until(lambda: tick_channels(rdb) == [ch], 5, "%s again" % ch)


# ---------------------------------------------------------------------------
# 4. per-user connection limit across nodes
# ---------------------------------------------------------------------------

def test_per_user_limit_counts_every_node(redis_server, rdb, rgw, rws):
    nodes = [rgw(redis_server, "--limits.max_connections_per_user=2") for _ in range(3)]
    tok = mint("u1", "trader")
    c1 = rws.open(nodes[0], tok)
    c2 = rws.open(nodes[1], tok)
    for i in (2, 2, 0):  # node 3 twice (no local leak of refused attempts), node 1 too
        r = rws.handshake(nodes[i], tok)
        assert r.status == 429, "third connection of u1 on node %d: expected 429, got %r" % (i + 1, r)
        assert "retry-after" in r.headers, r
        assert "sec-websocket-accept" not in r.headers, r
    # Another user is not affected.
    other = rws.open(nodes[2], mint("u2", "trader"))
    assert other.hello["user_id"] == "u2"

    close_ws(c1)

    def try_node3():
        r = rws.handshake(nodes[2], tok)
        if r.status == 101:
            return r
        assert r.status == 429, r
        return None

    r = wait_until(try_node3, 5, "a free slot for u1 on node 3 after closing its node 1 connection", interval=0.05)
    ws3 = r.conn
    hello = json.loads(ws3.recv_frame().payload)
    assert hello["type"] == "connected" and hello["user_id"] == "u1", hello
    # Two again (node 2 + node 3): the next one is refused anywhere.
    r = rws.handshake(nodes[0], tok)
    assert r.status == 429, r


def test_frames_sent_with_an_admitted_handshake_are_kept(redis_server, rgw):
    """An authenticated upgrade waits for the cluster-wide per-user count in
    Redis; frames the client sent in the same write as its handshake used to
    be dropped meanwhile. They are kept and answered after the upgrade."""
    import wsraw
    gw = rgw(redis_server)
    c = wsraw.WSRaw(gw.host, gw.port)
    try:
        req = c.request_bytes("GET", "/ws", {"Upgrade": "websocket", "Connection": "Upgrade",
                                             "Sec-WebSocket-Key": wsraw.new_key(), "Sec-WebSocket-Version": "13",
                                             "Authorization": "Bearer " + mint("alice", "viewer")})
        c.send(req + wsraw.build_frame(wsraw.OP_TEXT, b'{"type":"heartbeat","id":"same-write"}'))
        assert c.read_response().status == 101
        assert json.loads(c.recv_frame().payload)["type"] == "connected"
        ack = json.loads(c.recv_frame().payload)
        assert ack["type"] == "heartbeat_ack" and ack["id"] == "same-write", ack
    finally:
        c.close()


# ---------------------------------------------------------------------------
# 5. IP block on one node closes that IP everywhere
# ---------------------------------------------------------------------------

def test_block_ip_is_cluster_wide(redis_server, rdb, rgw, rws):
    nodes = [rgw(redis_server) for _ in range(3)]
    admin = mint("admin1", "admin")
    ip = "127.0.0.2"
    v1 = rws.open(nodes[0], mint("v1", "viewer"), src=ip)
    v2 = rws.open(nodes[1], src=ip)  # anonymous: blocked by IP just the same
    keep = rws.open(nodes[0], mint("v3", "viewer"))  # 127.0.0.1 stays
    c1 = v1.hello["client_id"]
    conns = wait_hash(rdb, P + "connections", lambda h: c1 in h, 5, "client from %s persisted" % ip)
    assert json.loads(conns[c1])["ip"] == ip, conns[c1]

    r = api(nodes[2], "POST", "/api/admin/block_ip", admin, {"ip": ip, "duration_s": 60})
    assert r.status == 200, r
    for ws, name in ((v1, "node 1"), (v2, "node 2")):
        code, _, _ = ws.raw.expect_close(1008, timeout=5)
        assert code == 1008, name
    for i, gw in enumerate(nodes):
        r = rws.handshake(gw, src=ip)
        assert r.status == 403, "upgrade from blocked %s on node %d: expected 403, got %r" % (ip, i + 1, r)
    until = rdb.hget(P + "blocked", ip)
    assert until is not None and abs(int(until) - (time.time() + 60)) < 10, "blocked hash entry %r" % until
    assert keep.fence() == [], "a client of another IP was disturbed"

    # A node that joins later learns the block list from Redis before it
    # says it is ready.
    late = rgw(redis_server)
    wait_until(lambda: http_request(late.host, late.port, "GET", "/ready").status == 200, 10, "late node ready")
    r = rws.handshake(late, src=ip)
    assert r.status == 403, "late node accepted a blocked IP: %r" % r

    r = api(nodes[0], "POST", "/api/admin/unblock_ip", admin, {"ip": ip})
    assert r.status == 200, r

    def upgrade_ok(gw):
        def f():
            resp = rws.handshake(gw, src=ip)
            if resp.status == 101:
                return resp
            assert resp.status == 403, resp
            return None
        return f

    for i, gw in ((1, nodes[1]), (0, nodes[0]), (2, nodes[2]), (3, late)):
        wait_until(upgrade_ok(gw), 5, "upgrade from %s allowed again on node %d" % (ip, i + 1), interval=0.05)
    assert rdb.hget(P + "blocked", ip) is None


def test_block_ip_with_huge_duration_is_permanent_in_redis(redis_server, rdb, rgw, rws):
    """A duration_s near INT64_MAX is "until unblocked" (as on the node
    itself): now + duration_s must not wrap into a time in the past in the
    shared block list, where a joining node would drop it."""
    gw = rgw(redis_server)
    ip = "127.0.0.3"
    r = api(gw, "POST", "/api/admin/block_ip", mint("admin1", "admin"), {"ip": ip, "duration_s": 2 ** 63 - 1})
    assert r.status == 200, r
    until = wait_until(lambda: rdb.hget(P + "blocked", ip), 5, "block of %s in Redis" % ip)
    assert int(until) == 0, "blocked hash entry %r: expected 0 (until unblocked)" % until
    late = rgw(redis_server)
    r = rws.handshake(late, src=ip)
    assert r.status == 403, "late node accepted a blocked IP: %r" % r


# ---------------------------------------------------------------------------
# 6. admin broadcast through Redis
# ---------------------------------------------------------------------------

def test_admin_broadcast_reaches_other_nodes(redis_server, rdb, rgw, rws):
    g1, g2 = rgw(redis_server), rgw(redis_server)
    trader2 = rws.open(g2, mint("t2", "trader"))
    analyst2 = rws.open(g2, mint("a2", "analyst"))
    trader1 = rws.open(g1, mint("t1", "trader"))
    wait_until(lambda: numsub(rdb, P + "control")[P + "control"] == 2, 5, "both nodes on the control channel")
    admin = mint("boss", "admin")

    r = api(g1, "POST", "/api/admin/broadcast", admin, {"message": "cluster hello"})
    assert r.status == 200, r
    for ws in (trader2, analyst2, trader1):
        ws.expect("broadcast", message="cluster hello", **{"from": "boss"})

    r = api(g1, "POST", "/api/admin/broadcast", admin, {"message": "analysts only", "roles": ["analyst"]})
    assert r.status == 200, r
    analyst2.expect("broadcast", message="analysts only")
    r = api(g1, "POST", "/api/admin/broadcast", admin, {"message": "third"})
    assert r.status == 200, r
    for ws in (trader2, trader1):  # exactly once each, and no role-filtered one in between
        ws.expect("broadcast", message="third")
    analyst2.expect("broadcast", message="third")
    for ws in (trader2, analyst2, trader1):
        assert ws.fence() == []


# ---------------------------------------------------------------------------
# 7. Redis failure: degraded, counted, logged, local service goes on,
#    state written back on reconnect
# ---------------------------------------------------------------------------

def test_redis_down_and_back(redis_server, rdb, rgw, rws):
    gw = rgw(redis_server, "--redis.reconnect_max_ms=500")
    sub = rws.open(gw, mint("v1", "viewer"))
    sub.subscribe(["AAPL"])
    pub = rws.open(gw, mint("pub1", "publisher"))
    wait_until(lambda: numsub(rdb, P + "tick:AAPL")[P + "tick:AAPL"] == 1, 5, "node on tick:AAPL")
    seq = 0
    for i in range(5):
        publish_one(pub, "AAPL", 100 + i, i)
        seq += 1
        expect_tick(sub, "AAPL", seq)
    assert rdb.get(P + "seq:AAPL") == "5"
    errors_before = get_metrics(gw)["tickgate_redis_errors_total"]

    # Mid-stream: Redis dies between two ticks. (Ticks in flight at that
    # moment: test_ticks_in_flight_when_redis_dies_reach_local_subscriber.)
    redis_server.kill()

    h = wait_until(lambda: (lambda h: h if h["checks"]["redis"] == "down" else None)(health(gw)), 5,
                   "checks.redis == 'down'")
    assert h["status"] == "degraded", h
    r = http_json(gw, "GET", "/health")
    assert r.status == 200, "degraded must still answer 200: %r" % r
    m = get_metrics(gw)
    assert m["tickgate_redis_up"] == 0, m.get("tickgate_redis_up")
    assert m["tickgate_redis_errors_total"] > errors_before, m.get("tickgate_redis_errors_total")
    wait_until(lambda: "redis: down" in gw.stderr, 5, "'redis: down' on the server's stderr")

    # Local service goes on: the local publisher reaches the local subscriber, seq +1.
    for i in range(5):
        publish_one(pub, "AAPL", 300 + i, 200 + i)
        seq += 1
        expect_tick(sub, "AAPL", seq)

    redis_server.restart()
    wait_until(lambda: (lambda h: h if h["status"] == "healthy" and h["checks"]["redis"] == "up" else None)(
        health(gw)), 10, "healthy with redis up after restart")
    assert get_metrics(gw)["tickgate_redis_up"] == 1
    cs, cp = sub.hello["client_id"], pub.hello["client_id"]
    conns = wait_hash(rdb, P + "connections", lambda h: cs in h and cp in h, 5, "live clients written back")
    assert json.loads(conns[cs])["user_id"] == "v1"
    wait_hash(rdb, P + "subscriptions", lambda h: cs in h and json.loads(h[cs]) == ["AAPL"], 5,
              "subscription written back")
    nid = node_id(rdb, gw)
    assert rdb.exists(P + "node:" + nid) == 1
    wait_until(lambda: int(rdb.get(P + "seq:AAPL") or 0) >= seq, 5,
               "Redis seq:AAPL >= %d (the last seq the client saw)" % seq)
    wait_until(lambda: numsub(rdb, P + "tick:AAPL")[P + "tick:AAPL"] == 1, 5, "re-subscribed to tick:AAPL")

    publish_one(pub, "AAPL", 400, 999)
    expect_tick(sub, "AAPL", seq + 1, volume=999)
    assert rdb.get(P + "seq:AAPL") == str(seq + 1)
    assert sub.fence() == []


# ---------------------------------------------------------------------------
# 8. a killed node's entries disappear after the TTL
# ---------------------------------------------------------------------------

def test_killed_node_entries_expire(redis_server, rdb, rgw, unmanaged_gw, rws):
    flags = ["--redis.node_ttl_s=2", "--limits.max_connections_per_user=1", "--server.workers=1"]
    doomed = unmanaged_gw(redis_server, *flags)
    survivor = rgw(redis_server, *flags)
    nd, ns = node_id(rdb, doomed), node_id(rdb, survivor)
    a = rws.open(doomed, mint("u1", "trader"))
    a.subscribe(["AAPL"])
    spread_ids(survivor)
    b = rws.open(survivor, mint("u2", "trader"))
    b.subscribe(["MSFT"])
    ca, cb = a.hello["client_id"], b.hello["client_id"]
    assert ca != cb
    wait_hash(rdb, P + "subscriptions", lambda h: ca in h and cb in h, 5, "both subscriptions persisted")
    assert rws.handshake(survivor, mint("u1", "trader")).status == 429, "u1 already has its one connection"

    doomed.proc.send_signal(signal.SIGKILL)
    doomed.wait(5)
    assert doomed.returncode == -signal.SIGKILL

    def gone():
        return (ca not in rdb.hkeys(P + "connections") and ca not in rdb.hkeys(P + "subscriptions")
                and nd not in rdb.smembers(P + "nodes")
                and rdb.exists(P + "node:" + nd, P + "node:" + nd + ":clients", P + "node:" + nd + ":users") == 0)

    wait_until(gone, 10, "the killed node's entries removed after its TTL", interval=0.1)
    assert cb in rdb.hkeys(P + "connections") and json.loads(rdb.hget(P + "subscriptions", cb)) == ["MSFT"]
    assert ns in rdb.smembers(P + "nodes") and rdb.exists(P + "node:" + ns) == 1
    # The dead node's connection no longer counts for u1.
    r = rws.handshake(survivor, mint("u1", "trader"))
    assert r.status == 101, "u1 refused after its only node died: %r" % r


# ---------------------------------------------------------------------------
# 9. graceful SIGTERM removes the node's entries at once
# ---------------------------------------------------------------------------

def test_sigterm_removes_node_entries_at_once(redis_server, rdb, rgw, rws):
    # default node_ttl_s 15: only the shutdown explains a removal within 2 s
    a_gw, b_gw = rgw(redis_server, "--server.workers=1"), rgw(redis_server, "--server.workers=1")
    na, nb = node_id(rdb, a_gw), node_id(rdb, b_gw)
    a1 = rws.open(a_gw, mint("u1", "trader"))
    a1.subscribe(["AAPL"])
    a2 = rws.open(a_gw, mint("u2", "viewer"))
    spread_ids(b_gw)
    b1 = rws.open(b_gw, mint("u3", "trader"))
    b1.subscribe(["MSFT"])
    ids_a = {a1.hello["client_id"], a2.hello["client_id"]}
    cb = b1.hello["client_id"]
    assert cb not in ids_a
    wait_hash(rdb, P + "connections", lambda h: ids_a | {cb} <= set(h), 5, "all three connections persisted")
    wait_hash(rdb, P + "subscriptions", lambda h: {a1.hello["client_id"], cb} <= set(h), 5, "subscriptions persisted")
    assert rdb.hget(P + "node:" + na + ":users", "u1") == "1"

    a_gw.send_signal(signal.SIGTERM)
    for ws in (a1, a2):
        ws.raw.expect_close(1001, timeout=5)
    assert a_gw.wait(10) == 0, "node A after SIGTERM: %s\n%s" % (a_gw.returncode, a_gw.output())

    def gone():
        return (not (ids_a & set(rdb.hkeys(P + "connections"))) and not (ids_a & set(rdb.hkeys(P + "subscriptions")))
                and na not in rdb.smembers(P + "nodes")
                and rdb.exists(P + "node:" + na, P + "node:" + na + ":clients", P + "node:" + na + ":users") == 0)

    wait_until(gone, 2, "node A's entries removed on graceful shutdown")
    assert cb in rdb.hkeys(P + "connections")
    assert json.loads(rdb.hget(P + "subscriptions", cb)) == ["MSFT"]
    assert nb in rdb.smembers(P + "nodes") and rdb.exists(P + "node:" + nb) == 1
    assert b1.fence() == []


# ---------------------------------------------------------------------------
# 10. ticks handed to Redis when it dies are not lost for local subscribers
# ---------------------------------------------------------------------------

def test_ticks_in_flight_when_redis_dies_reach_local_subscriber(redis_server, rdb, rgw, rws):
    """Redis dies with this node's publish scripts in flight (stopped, then
    SIGKILLed, so the in-flight window is certain rather than a race). Every
    tick the gateway acknowledged to the local publisher must still reach the
    local subscriber, in order, seq +1 (section 9: "local service goes on ...
    Nothing local is lost")."""
    gw = rgw(redis_server, "--redis.reconnect_max_ms=500")
    sub = rws.open(gw, mint("v1", "viewer"))
    sub.subscribe(["AAPL"])
    pub = rws.open(gw, mint("pub1", "publisher"))
    wait_until(lambda: numsub(rdb, P + "tick:AAPL")[P + "tick:AAPL"] == 1, 5, "node on tick:AAPL")
    for i in range(3):
        publish_one(pub, "AAPL", 100 + i, i)
        expect_tick(sub, "AAPL", i + 1, volume=i)

    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(3):
            pub.send({"type": "publish", "id": "f%d" % i, "updates": [{"symbol": "AAPL", "price": 150 + i,
                                                                       "volume": 50 + i}]})
        # The gateway answers before Redis does (the publishes are in flight now)...
        replies = [pub.recv() for _ in range(3)]
    finally:
        redis_server.kill()  # ...and Redis dies without answering them.
    acked = [50 + i for i, r in enumerate(replies) if r.get("type") == "published" and r.get("count") == 1]
    wait_until(lambda: health(gw)["checks"]["redis"] == "down", 5, "checks.redis == 'down'")

    assert acked, "the gateway acknowledged none of the publishes: %r" % replies
    # One more tick after the failure; everything up to it must have arrived.
    publish_one(pub, "AAPL", 200, 99)
    got = []
    while not got or got[-1][1] != 99:
        try:
            m = sub.recv(5)
        except AssertionError as e:
            raise AssertionError("%s; ticks received after the failure (seq, volume): %r" % (e, got)) from None
        assert m.get("type") == "price_update", m
        got.append((m["seq"], int(m["volume"])))
    want = [(4 + k, v) for k, v in enumerate(acked + [99])]
    assert got == want, ("ticks acknowledged to the local publisher were lost when Redis died: "
                         "expected (seq, volume) %r, got %r" % (want, got))


# ---------------------------------------------------------------------------
# 11. a client that leaves while Redis is unreachable leaves no entry behind
# ---------------------------------------------------------------------------

def test_client_closed_during_outage_is_removed_on_reconnect(redis_server, rdb, rgw, rws):
    """A transient outage (Redis keeps its data, the node loses its links):
    after the reconnect the shared hashes must match the node's state again
    (section 9: "kept in step with the node's own state, removed on
    disconnect ... on reconnect the node writes its whole state back")."""
    gw = rgw(redis_server, "--redis.reconnect_max_ms=500")
    nid = node_id(rdb, gw)
    x = rws.open(gw, mint("u1", "trader"))
    x.subscribe(["AAPL"])
    y = rws.open(gw, mint("u2", "trader"))
    y.subscribe(["MSFT"])
    cx, cy = x.hello["client_id"], y.hello["client_id"]
    wait_hash(rdb, P + "subscriptions", lambda h: cx in h and cy in h, 5, "both clients persisted")
    assert connections_gauge(gw) == 2

    # Redis refuses new clients and drops the node's two links: the node is
    # cut off while Redis (and its data) stays.
    rdb.config_set("maxclients", 1)
    try:
        rdb.client_kill_filter(_type="normal", skipme=True)
        rdb.client_kill_filter(_type="pubsub", skipme=True)
        wait_until(lambda: health(gw)["checks"]["redis"] == "down", 5, "checks.redis == 'down'")
        close_ws(x)
        wait_until(lambda: connections_gauge(gw) == 1, 5, "the node saw x leave")
    finally:
        rdb.config_set("maxclients", 10000)
    wait_until(lambda: health(gw)["checks"]["redis"] == "up", 10, "checks.redis == 'up' again")
    wait_until(lambda: rdb.sismember(P + "node:" + nid + ":clients", cy), 5, "state written back")
    wait_until(lambda: cx not in rdb.hkeys(P + "connections") and cx not in rdb.hkeys(P + "subscriptions"), 5,
               "the entries of client %s (closed during the outage) removed after the reconnect" % cx)
    assert cy in rdb.hkeys(P + "connections")
    assert json.loads(rdb.hget(P + "subscriptions", cy)) == ["MSFT"]


# ---------------------------------------------------------------------------
# 12. client ids name one connection in the whole cluster
# ---------------------------------------------------------------------------

def test_client_ids_unique_across_nodes(redis_server, rdb, rgw, rws):
    """websocket:connections is one hash for every node, keyed by client id:
    two live clients on two nodes must not share an id, or one overwrites
    the other's entry and a disconnect (or a dead node's cleanup) removes the
    other's."""
    flags = ["--server.workers=1", "--limits.max_connections_per_ip=100"]
    g1, g2 = rgw(redis_server, *flags), rgw(redis_server, *flags)
    n1, n2 = node_id(rdb, g1), node_id(rdb, g2)
    opened = []
    for _ in range(12):
        for gw, nid in ((g1, n1), (g2, n2)):
            ws = rws.open(gw)
            opened.append((ws.hello["client_id"], nid))
    ids = [c for c, _ in opened]
    dups = sorted({c for c in ids if ids.count(c) > 1})
    assert not dups, "client ids handed out by both nodes at once: %r" % dups
    conns = wait_hash(rdb, P + "connections", lambda h: set(ids) <= set(h), 5, "every client persisted")
    for cid, nid in opened:
        assert json.loads(conns[cid])["node"] == nid, (cid, conns[cid])
