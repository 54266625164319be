"""Redis Cluster (PROTOCOL.md section 16, docs/scaling.md): with
redis.cluster the node reads the slot map, routes every key to its primary,
keeps a symbol's counter, epoch, history and tick channel in one slot
(hash tag {SYM}) and listens on sharded pub/sub; the registry lives under
{registry}. A primary lost and restarted empty: the node goes degraded,
comes back by itself, and the lost symbols get new epochs, so recovery
never crosses the hole.

Real processes: three redis-server primaries joined by redis-cli --cluster
create, two tickgate nodes. Every wait polls an event with a deadline."""
import time

import pytest

from cluster_helpers import RedisCluster, cgw, cluster  # noqa: F401
from conftest import api, get_metrics, mint, wait_until
from redis_helpers import health, rws  # noqa: F401
from wsraw import http_request
from test_recovery import publish_n, read_seqs, recover

SYMS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "MA", "XOM", "KO"]
ROUNDS = 20


def owners(cl, syms):
    return {s: cl.owner("websocket:seq:{%s}" % s).port for s in syms}


def read_all(ws, want, timeout=20.0):
    """Reads price_updates until every symbol reached want[sym]; returns
    {sym: [seq, ...]} in arrival order."""
    got = {s: [] for s in want}
    wait = dict(want)
    while wait:
        m = ws.recv(timeout)
        assert m.get("type") == "price_update" and "snapshot" not in m, m
        got[m["symbol"]].append(m["seq"])
        if m["seq"] >= wait.get(m["symbol"], 1 << 62):
            del wait[m["symbol"]]
    return got


def test_two_nodes_many_symbols_every_seq_consecutive(cluster, cgw, rws):
    assert len(set(owners(cluster, SYMS).values())) == 3, "the symbols must spread over the three primaries"
    a, b = cgw(cluster, 0), cgw(cluster, 1)
    sub = rws.open(a, token=mint("sub1", "trader"))
    conf = sub.subscribe(SYMS)
    assert set(conf["epochs"]) == set(SYMS)
    pa, pb = rws.open(a, token=mint("pub1", "publisher")), rws.open(b, token=mint("pub2", "publisher"))
    for i in range(ROUNDS):  # both nodes publish every symbol, interleaved
        for p in (pa, pb):
            r = p.publish([{"symbol": s, "price": 100 + i * 0.01} for s in SYMS])
            assert r.get("type") == "published", r
    got = read_all(sub, {s: 2 * ROUNDS for s in SYMS})
    for s in SYMS:
        assert got[s] == list(range(1, 2 * ROUNDS + 1)), (s, got[s])
    # The keys are where the layout says: each symbol's on its slot's primary.
    for s in SYMS:
        assert cluster.get("websocket:seq:{%s}" % s) == str(2 * ROUNDS)
        assert cluster.get("websocket:history:{%s}" % s) == "stream"
        assert cluster.get("websocket:epoch:{%s}" % s) == conf["epochs"][s]
    reg = cluster.owner("websocket:{registry}:nodes").client()
    try:
        wait_until(lambda: reg.scard("websocket:{registry}:nodes") == 2, 10, "both nodes registered")
        assert reg.hlen("websocket:{registry}:connections") >= 3
    finally:
        reg.close()
    # A node that starts listening late recovers from the shared stream.
    late = rws.open(b, token=mint("sub2", "trader"))
    c = recover(late, ROUNDS, conf["epochs"]["AAPL"], sym="AAPL")
    assert c["recovered"] == {"AAPL": True}, c
    assert read_seqs(late, "AAPL", 2 * ROUNDS) == list(range(ROUNDS + 1, 2 * ROUNDS + 1))
    m = get_metrics(a)
    assert m["tickgate_redis_up"] == 1 and m["tickgate_redis_inflight_full_total"] == 0


def test_shard_killed_and_restarted_epochs_change_delivery_resumes(cluster, cgw, rws):
    own = owners(cluster, SYMS)
    victim = cluster.owner("websocket:seq:{AAPL}")
    lost = [s for s in SYMS if own[s] == victim.port]
    kept = [s for s in SYMS if own[s] != victim.port]
    seed_a = next(i for i, x in enumerate(cluster.nodes) if x.port != victim.port)
    a, b = cgw(cluster, seed_a), cgw(cluster, seed_a)
    sub = rws.open(a, token=mint("sub1", "trader"))
    conf = sub.subscribe(SYMS)
    epochs = conf["epochs"]
    pub = rws.open(b, token=mint("pub1", "publisher"))
    for s in SYMS:
        publish_n(pub, 5, sym=s)
    read_all(sub, {s: 5 for s in SYMS})

    victim.kill()
    for gw in (a, b):
        wait_until(lambda: health(gw)["checks"]["redis"] != "up", 15, "degraded on port %d" % gw.port)
    t0 = time.monotonic()
    victim.start()  # same port and nodes file, no data: its slots come back empty
    cluster.wait_ok(30)
    t_ok = time.monotonic()
    for gw in (a, b):
        wait_until(lambda: health(gw)["checks"]["redis"] == "up" and health(gw)["status"] == "healthy", 30,
                   "healthy again on port %d" % gw.port)
    print("\ncluster: primary restarted -> cluster_state ok %.2f s -> both nodes healthy %.2f s after the restart"
          % (t_ok - t0, time.monotonic() - t0))

    # Delivery resumes for every symbol, each one's seqs consecutive.
    for s in SYMS:
        publish_n(pub, 3, sym=s)
    got = read_all(sub, {s: 8 for s in SYMS})
    for s in SYMS:
        assert got[s] == list(range(got[s][0], got[s][0] + len(got[s]))) and got[s][-1] == 8, (s, got[s])

    # The emptied slots have new epochs: recovering across the hole is refused.
    probe = rws.open(a, token=mint("sub2", "trader"))
    now = probe.subscribe(SYMS)["epochs"]
    for s in lost:
        assert now[s] != epochs[s], s
    for s in kept:
        assert now[s] == epochs[s], s
    x = rws.open(b, token=mint("sub3", "trader"))
    c = recover(x, 2, epochs[lost[0]], sym=lost[0])
    assert c["recovered"] == {lost[0]: False}, c
    y = rws.open(b, token=mint("sub4", "trader"))
    c = recover(y, 5, epochs[kept[0]], sym=kept[0])
    assert c["recovered"] == {kept[0]: True}, c
    assert read_seqs(y, kept[0], 8) == [6, 7, 8]
    assert get_metrics(a)["tickgate_redis_errors_total"] > 0


def test_control_channel_on_every_node_blocks_and_broadcasts(cluster, cgw, rws):
    """Admin broadcasts and IP blocks go over the sharded control channel,
    which every node SSUBSCRIBEs on the registry's primary; the block list
    is in the registry slot, so a node that joins later knows it."""
    a, b = cgw(cluster, 0), cgw(cluster, 2)
    ch = "websocket:{registry}:control"
    reg = cluster.owner(ch).client()
    try:
        wait_until(lambda: reg.execute_command("PUBSUB", "SHARDNUMSUB", ch)[1] == 2, 10,
                   "both nodes on the control channel")
        admin = mint("boss", "admin")
        t1, t2 = rws.open(a, mint("t1", "trader")), rws.open(b, mint("t2", "trader"))
        r = api(b, "POST", "/api/admin/broadcast", admin, {"message": "cluster hello"})
        assert r.status == 200, r
        for ws in (t1, t2):
            ws.expect("broadcast", message="cluster hello", **{"from": "boss"})
        ip = "127.0.0.2"
        v = rws.open(a, mint("v1", "viewer"), src=ip)
        r = api(b, "POST", "/api/admin/block_ip", admin, {"ip": ip, "duration_s": 60})
        assert r.status == 200, r
        code, _, _ = v.raw.expect_close(1008, timeout=5)
        assert code == 1008
        assert reg.hget("websocket:{registry}:blocked", ip) is not None
        late = cgw(cluster, 1)
        wait_until(lambda: http_request(late.host, late.port, "GET", "/ready").status == 200, 10, "late node ready")
        assert rws.handshake(late, src=ip).status == 403
        assert t1.fence() == [] and t2.fence() == []
    finally:
        reg.close()
