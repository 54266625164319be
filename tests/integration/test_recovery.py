"""Recovery after reconnect (PROTOCOL.md section 13): epochs in
subscription_confirmed, `recover` on subscribe, exactly the missed ticks
then live with no gap and no duplicate, the snapshot when the history is
too short or the epoch is not current, tickgate_recoveries_total; on one
node, after a restart, across nodes on one Redis, with Redis restarted,
and a node killed under load.

Ticks come only from the tests (--feed.simulator=false). Every wait reads
the socket or polls with a deadline."""
import threading
import time

import pytest

from conftest import get_metrics, get_stats, mint, wait_until
from redis_helpers import GateProxy, rdb, redis_server, rgw, rws, unmanaged_gw  # noqa: F401

SYM = "AAPL"
RATE = "--limits.max_messages_per_minute=100000000"


def publish_n(pub, n, sym=SYM, base=190.0):
    """Publishes n ticks of sym, up to 100 a message (acknowledged)."""
    while n > 0:
        k = min(n, 100)
        r = pub.publish([{"symbol": sym, "price": base + (i % 50) * 0.01} for i in range(k)])
        assert r.get("type") == "published", r
        n -= k


def read_seqs(ws, sym, upto, timeout=10.0):
    """Reads price_updates of sym until seq `upto`; returns their seqs
    (other symbols' ticks are skipped; anything else fails)."""
    seqs = []
    deadline = time.monotonic() + timeout
    while not seqs or seqs[-1] < upto:
        m = ws.recv(max(0.1, deadline - time.monotonic()))
        assert m.get("type") == "price_update", m
        if m["symbol"] != sym:
            continue
        assert "snapshot" not in m, m
        seqs.append(m["seq"])
    return seqs


def live_seq(ws, sym=SYM):
    """Subscribes, returns (epoch, seq of the snapshot)."""
    conf = ws.request({"type": "subscribe", "symbols": [sym]})
    assert conf["type"] == "subscription_confirmed", conf
    snap = ws.recv()
    assert snap.get("snapshot") is True, snap
    return conf["epochs"][sym], snap["seq"]


def node_with_ticks(tickgate, jclients, n, *flags):
    """A node, a publisher, a live subscriber of SYM that saw ticks 1..n:
    (gw, pub, ws, epoch)."""
    gw = tickgate(RATE, *flags)
    pub = jclients.publisher(gw)
    ws = jclients.open(gw)
    epoch, _ = live_seq(ws)
    publish_n(pub, n)
    assert read_seqs(ws, SYM, n) == list(range(1, n + 1))
    return gw, pub, ws, epoch


def recover(ws, seq, epoch, sym=SYM, id=None):
    """Sends a recovering subscribe; returns the confirmation."""
    msg = {"type": "subscribe", "symbols": [sym], "recover": {sym: {"seq": seq, "epoch": epoch}}}
    if id is not None:
        msg["id"] = id
    conf = ws.request(msg)
    assert conf["type"] == "subscription_confirmed", conf
    assert set(conf["recovered"]) == {sym}, conf
    return conf


def test_recover_after_disconnect(tickgate, jclients):
    gw, pub, ws, epoch = node_with_ticks(tickgate, jclients, 5)
    ws.close()
    publish_n(pub, 7)  # missed: 6..12
    ws2 = jclients.open(gw)
    conf = recover(ws2, 5, epoch, id="r1")
    assert conf["recovered"] == {SYM: True} and conf["epochs"] == {SYM: epoch} and conf["id"] == "r1", conf
    assert read_seqs(ws2, SYM, 12) == list(range(6, 13))
    publish_n(pub, 1)
    assert read_seqs(ws2, SYM, 13) == [13]
    assert ws2.fence() == []
    m = get_metrics(gw)
    assert m['tickgate_recoveries_total{result="recovered"}'] == 1, m
    assert get_stats(gw)["recoveries_total"] == {"recovered": 1, "missed": 0}


def test_recover_up_to_date_gets_nothing_then_live(tickgate, jclients):
    gw, pub, ws, epoch = node_with_ticks(tickgate, jclients, 3)
    ws2 = jclients.open(gw)
    assert recover(ws2, 3, epoch)["recovered"] == {SYM: True}
    assert ws2.fence() == []
    publish_n(pub, 1)
    assert read_seqs(ws2, SYM, 4) == [4]


def test_wrong_epoch_or_too_old_gets_snapshot(tickgate, jclients):
    gw, pub, ws, epoch = node_with_ticks(tickgate, jclients, 30, "--feed.history_size=10")
    for seq, ep in ((5, epoch), (25, "not-the-epoch"), (25, 12345), (31, epoch)):
        c = jclients.open(gw)
        msg = {"type": "subscribe", "symbols": [SYM], "recover": {SYM: {"seq": seq, "epoch": ep}}}
        conf = c.request(msg)
        assert conf["recovered"] == {SYM: False}, (seq, ep, conf)
        snap = c.recv()
        assert snap.get("snapshot") is True and snap["seq"] == 30, snap
        assert c.fence() == []
    # seq 20 is exactly retained (21..30 = 10 ticks)
    c = jclients.open(gw)
    assert recover(c, 20, epoch)["recovered"] == {SYM: True}
    assert read_seqs(c, SYM, 30) == list(range(21, 31))
    m = get_metrics(gw)
    assert m['tickgate_recoveries_total{result="missed"}'] == 4, m


@pytest.mark.parametrize("msg", [
    {"type": "subscribe", "symbols": ["AAPL"], "recover": {"MSFT": {"seq": 1, "epoch": "x"}}},
    {"type": "subscribe", "symbols": ["AAPL"], "recover": ["AAPL"]},
    {"type": "subscribe", "symbols": ["AAPL"], "recover": {"AAPL": {"epoch": "x"}}},
    {"type": "subscribe", "symbols": ["AAPL"], "recover": {"AAPL": {"seq": -1, "epoch": "x"}}},
    {"type": "subscribe", "symbols": ["AAPL"], "recover": {"AAPL": 5}},
])
def test_bad_recover_is_invalid_message(tickgate, jclients, msg):
    gw = tickgate(RATE)
    ws = jclients.open(gw)
    r = ws.request(msg)
    assert r["type"] == "error" and r["code"] == "invalid_message", r
    assert get_stats(gw)["subscriptions"] == 0


def test_restart_without_redis_changes_epoch(tickgate, jclients):
    gw, pub, ws, epoch = node_with_ticks(tickgate, jclients, 3)
    ws.close()
    pub.close()
    gw.stop()
    gw2 = tickgate(RATE)
    pub2 = jclients.publisher(gw2)
    publish_n(pub2, 4)
    ws2 = jclients.open(gw2)
    conf = ws2.request({"type": "subscribe", "symbols": [SYM], "recover": {SYM: {"seq": 3, "epoch": epoch}}})
    assert conf["recovered"] == {SYM: False} and conf["epochs"][SYM] != epoch, conf
    snap = ws2.recv()
    assert snap.get("snapshot") is True and snap["seq"] == 4, snap


def test_recover_under_continuous_publishing(tickgate, jclients):
    """Ticks keep arriving while the replay is written: the client's seqs
    are strictly consecutive across the join."""
    gw, pub, ws, epoch = node_with_ticks(tickgate, jclients, 200, "--server.workers=2")
    ws.close()
    publish_n(pub, 300)
    stop = threading.Event()
    sent = [500]

    def keep_publishing():
        p = jclients.publisher(gw, sub="pub2")
        while not stop.is_set():
            publish_n(p, 1)
            sent[0] += 1

    t = threading.Thread(target=keep_publishing)
    t.start()
    try:
        ws2 = jclients.open(gw)
        assert recover(ws2, 200, epoch)["recovered"] == {SYM: True}
        seqs = read_seqs(ws2, SYM, 700, timeout=30)
    finally:
        stop.set()
        t.join()
    assert seqs == list(range(201, 201 + len(seqs))), seqs[:5]
    final = sent[0]
    more = read_seqs(ws2, SYM, final, timeout=30) if seqs[-1] < final else []
    assert seqs + more == list(range(201, final + 1))


def test_many_symbols_replay_in_slices_others_unaffected(tickgate, jclients):
    """1,000 ticks on each of 5 symbols are replayed in slices; a client on
    the same node keeps answering meanwhile."""
    syms = ["AAPL", "MSFT", "GOOGL", "NVDA", "TSLA"]
    gw = tickgate(RATE, "--server.workers=1")
    pub = jclients.publisher(gw)
    tok = mint("trader1", "trader")
    ws = jclients.open(gw, token=tok)
    conf = ws.request({"type": "subscribe", "symbols": syms})
    for _ in syms:
        ws.recv()
    for s in syms:
        publish_n(pub, 1000, sym=s)
    other = jclients.open(gw)
    ws2 = jclients.open(gw, token=tok)
    ws2.send({"type": "subscribe", "symbols": syms,
              "recover": {s: {"seq": 0, "epoch": conf["epochs"][s]} for s in syms}})
    assert other.request({"type": "heartbeat", "id": "h"})["type"] == "heartbeat_ack"
    c = ws2.recv()
    assert c["type"] == "subscription_confirmed" and c["recovered"] == {s: True for s in syms}, c
    got = {s: [] for s in syms}
    while any(len(v) < 1000 for v in got.values()):
        m = ws2.recv()
        assert m["type"] == "price_update" and "snapshot" not in m, m
        got[m["symbol"]].append(m["seq"])
    assert all(v == list(range(1, 1001)) for v in got.values())
    assert ws2.fence() == []


# ---------------------------------------------------------------------------
# with Redis: one epoch per symbol for the cluster, the shared stream
# ---------------------------------------------------------------------------

def drain_until_closed(ws):
    """Reads what a killed node had sent (price_updates of SYM) until the
    connection ends; returns their seqs."""
    seqs = []
    while True:
        try:
            m = ws.recv(5)
        except AssertionError:
            return seqs
        if m.get("type") == "price_update" and m["symbol"] == SYM:
            seqs.append(m["seq"])


def test_recover_across_nodes_on_one_redis(redis_server, rgw, rws):
    a, b = rgw(redis_server), rgw(redis_server)
    pub = rws.open(a, token=mint("pub1", "publisher"))
    ws = rws.open(a)
    epoch, _ = live_seq(ws)
    probe = rws.open(b)
    assert live_seq(probe)[0] == epoch  # every node reports the cluster's epoch
    publish_n(pub, 5)
    assert read_seqs(ws, SYM, 5) == [1, 2, 3, 4, 5]
    ws.close()
    publish_n(pub, 7)
    read_seqs(probe, SYM, 12)
    probe.close()  # b no longer listens to SYM: it recovers from the stream
    wait_until(lambda: get_stats(b)["active_streams"] == 0, 10, "b idle")
    ws2 = rws.open(b)
    conf = recover(ws2, 5, epoch)
    assert conf["recovered"] == {SYM: True} and conf["epochs"] == {SYM: epoch}, conf
    assert read_seqs(ws2, SYM, 12) == list(range(6, 13))
    publish_n(pub, 1)
    assert read_seqs(ws2, SYM, 13) == [13]
    assert ws2.fence() == []


def test_redis_restarted_in_the_middle_never_a_silent_gap(redis_server, rgw, rws):
    a = rgw(redis_server)
    pub = rws.open(a, token=mint("pub1", "publisher"))
    watch = rws.open(a)
    epoch, _ = live_seq(watch)
    publish_n(pub, 5)
    read_seqs(watch, SYM, 5)
    redis_server.restart()  # no persistence: the counter, the epoch and the stream are gone
    wait_until(lambda: get_metrics(a)["tickgate_redis_up"] == 1, 15, "redis up again")
    publish_n(pub, 3)
    last = read_seqs(watch, SYM, 8)[-1]
    ws = rws.open(a)
    conf = ws.request({"type": "subscribe", "symbols": [SYM], "recover": {SYM: {"seq": 5, "epoch": epoch}}})
    if conf["recovered"][SYM]:
        assert read_seqs(ws, SYM, last) == list(range(6, last + 1))
    else:
        assert conf["epochs"][SYM] != epoch, conf
        snap = ws.recv()
        assert snap.get("snapshot") is True and snap["seq"] == last, snap
    assert ws.fence() == []


def test_chaos_node_killed_clients_recover_on_the_other(redis_server, rgw, unmanaged_gw, rws):
    """Clients of node A lose it (SIGKILL) while ticks keep coming through
    node B; each reconnects to B with its last seq and epoch: every
    client's seqs, before and after, are gap-free."""
    flags = ("--feed.history_size=100000", "--limits.max_connections_per_ip=1000",
             "--limits.max_connects_per_ip_per_minute=1000")
    a = unmanaged_gw(redis_server, *flags)
    b = rgw(redis_server, *flags)
    clients = [rws.open(a) for _ in range(20)]
    epochs = [live_seq(c)[0] for c in clients]
    assert len(set(epochs)) == 1
    probe = rws.open(a)
    live_seq(probe)
    pub = rws.open(b, token=mint("pub1", "publisher"))
    total, killed_at = [0], threading.Event()
    stop = threading.Event()

    def keep_publishing():
        while not stop.is_set():
            r = pub.publish([{"symbol": SYM, "price": 100.0 + k * 0.01} for k in range(5)])
            assert r.get("type") == "published", r
            total[0] += 5
            if total[0] >= 1500:
                break

    t = threading.Thread(target=keep_publishing)
    t.start()
    try:
        read_seqs(probe, SYM, 100, timeout=30)
        a.kill()  # SIGKILL under load
        seen = [drain_until_closed(c) for c in clients]
        for s in seen:
            assert s == list(range(1, len(s) + 1)), s[:10]
        confs, again = [], []
        for s in seen:
            ws = rws.open(b)
            confs.append(recover(ws, s[-1] if s else 0, epochs[0]))
            again.append(ws)
    finally:
        t.join()
    final = total[0]
    for s, ws, conf in zip(seen, again, confs):
        assert conf["recovered"] == {SYM: True}, conf
        after = read_seqs(ws, SYM, final, timeout=30)
        assert s + after == list(range(1, final + 1)), (len(s), after[:5])


@pytest.mark.parametrize("burst", [300, 600])
def test_catch_up_outrun_by_live_ticks_never_a_gap(redis_server, rdb, rgw, rws, burst):
    """Node B starts listening to SYM for a recovering client while its
    catch-up (marker, then stream pages) is held up and `burst` live ticks
    (more than the 256 a catch-up holds, 600: more than a page) arrive on
    its pub/sub link: the client still gets every seq after its own, once.
    A proxy holds B's command replies from the catch-up's XREVRANGE until B
    has read the whole burst."""
    proxy = GateProxy(redis_server)
    try:
        b = rgw(proxy)
        c = rgw(redis_server)
        pub = rws.open(c, token=mint("pub1", "publisher"))
        publish_n(pub, 10)
        epoch = wait_until(lambda: rdb.get("websocket:epoch:" + SYM), 10, "the cluster's epoch of " + SYM)
        proxy.arm(b"XREVRANGE")
        ws = rws.open(b)
        ws.send({"type": "subscribe", "symbols": [SYM], "recover": {SYM: {"seq": 10, "epoch": epoch}}})
        held = wait_until(proxy.holding, 10, "B's catch-up marker held")
        wait_until(lambda: b"\r\n$2\r\n10\r\n*0\r\n" in held.held, 10, "B's RECOVER answered (seq 10), held")
        wait_until(lambda: rdb.pubsub_numsub("websocket:tick:" + SYM)[0][1] == 1, 10, "B listening to " + SYM)
        publish_n(pub, burst)
        sub = proxy.pubsub()
        wait_until(lambda: b"|%d|" % (10 + burst) in sub.passed and proxy.unread(sub) == 0, 10,
                   "B read the burst")
        proxy.release()
        conf = ws.expect("subscription_confirmed")
        assert conf["recovered"] == {SYM: True}, conf
        assert read_seqs(ws, SYM, 10 + burst) == list(range(11, 11 + burst))
    finally:
        proxy.close()
