"""Redis Sentinel (PROTOCOL.md section 16, docs/scaling.md): the node asks
the sentinels for the primary, never writes to a replica, follows a
failover (+switch-master), writes its state back and re-subscribes, and
gives every symbol a new epoch on a primary with another replication
history, so recovering clients get a gap-free replay or recovered:false,
never a silent gap.

Real processes: a primary, its replica and one sentinel (quorum 1,
down-after 500 ms), two tickgate nodes. Every wait polls an event with a
deadline (health, the sentinel's answer, ticks read from sockets)."""
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import get_metrics, mint, tickgate_bin, wait_until
from redis_helpers import rws, wait_redis_up, health  # noqa: F401
from sentinel_helpers import MASTER, HASet, ha, sgw, sgw_unmanaged  # noqa: F401
from test_recovery import SYM, live_seq, publish_n, read_seqs, recover

JUMP = 1000000  # a new primary's counters jump by this (cluster/sentinel.c)


class Reader(threading.Thread):
    """Reads one subscriber's price_updates of SYM in the background,
    keeping (monotonic time, seq) of each."""

    def __init__(self, ws):
        super().__init__(daemon=True)
        self.ws, self.got, self.error = ws, [], None
        self.stopping = threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                try:
                    m = self.ws.recv(0.2)
                except AssertionError as e:
                    if "no message from the server" in str(e):
                        continue
                    raise
                if m.get("type") == "price_update" and m["symbol"] == SYM:
                    self.got.append((time.monotonic(), m["seq"]))
        except Exception as e:  # reported by finish()
            self.error = e

    def last(self):
        return self.got[-1][1] if self.got else 0

    def first_after(self, t):
        return next((at for at, _ in self.got if at > t), None)

    def finish(self):
        self.stopping.set()
        self.join(10)
        assert self.error is None, self.error
        return [s for _, s in self.got]


class Publisher(threading.Thread):
    """Publishes SYM continuously (5 ticks a message, each acknowledged),
    about 1000 ticks/s, until stopped."""

    def __init__(self, ws):
        super().__init__(daemon=True)
        self.ws, self.sent, self.error = ws, 0, None
        self.stopping = threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                r = self.ws.publish([{"symbol": SYM, "price": 100.0 + (self.sent + k) % 50 * 0.01} for k in range(5)])
                assert r.get("type") == "published", r
                self.sent += 5
                self.stopping.wait(0.005)  # pacing, not a synchronisation
        except Exception as e:
            self.error = e

    def finish(self):
        self.stopping.set()
        self.join(10)
        assert self.error is None, self.error


def our_clients(srv):
    """Connections a tickgate node opened to srv (CLIENT SETNAME tickgate-<node>)."""
    c = srv.client()
    try:
        return [x for x in c.client_list() if x.get("name", "").startswith("tickgate-")]
    finally:
        c.close()


def recover_either_way(ws, seq, epoch):
    """Recovery's promise: a gap-free replay, or recovered:false and the
    snapshot. Returns the confirmation."""
    conf = recover(ws, seq, epoch)
    if conf["recovered"][SYM]:
        m = ws.recv()
        assert m.get("type") == "price_update" and "snapshot" not in m and m["seq"] == seq + 1, m
    else:
        snap = ws.recv()
        assert snap.get("snapshot") is True, snap
    return conf


def test_primary_killed_delivery_resumes_on_both_nodes(ha, sgw, rws):
    a = sgw(ha)
    # b's first sentinel is down: the next one in the list is asked.
    b = sgw(ha, sentinels="127.0.0.1:%d,127.0.0.1:%d" % (ha.dead_port(), ha.sentinel.port))
    assert len(our_clients(ha.primary)) == 4 and our_clients(ha.replica) == []  # never a replica
    pub = rws.open(a, token=mint("pub1", "publisher"))
    sa, sb = rws.open(a), rws.open(b)
    e0 = live_seq(sa)[0]
    assert live_seq(sb)[0] == e0
    ra, rb, p = Reader(sa), Reader(sb), Publisher(pub)
    for t in (ra, rb, p):
        t.start()
    try:
        wait_until(lambda: len(rb.got) >= 100, 20, "ticks through Redis on b")
        t0 = time.monotonic()
        ha.primary.kill()
        wait_until(lambda: ha.sentinel.primary()[1] == ha.replica.port, 30, "the sentinel promoted the replica")
        wait_redis_up(a, 30)
        wait_redis_up(b, 30)
        t_up = time.monotonic()
        wait_until(lambda: rb.first_after(t0), 30, "ticks on b after the kill")  # b's only source is Redis
        wait_until(lambda: ra.first_after(t_up), 30, "ticks on a after both are up")
        flowing = max(rb.first_after(t0), t_up) - t0
        print("\nfailover: kill -> both nodes healthy %.2f s, -> ticks on b again %.2f s, -> both flowing %.2f s"
              % (t_up - t0, rb.first_after(t0) - t0, flowing))
    finally:
        p.finish()
    # Everything after the failover goes through the new primary to both.
    wait_until(lambda: ra.last() == rb.last() > 0, 20, "a and b at the same seq")
    seen_a, seen_b = ra.finish(), rb.finish()
    for seen in (seen_a, seen_b):
        assert all(x < y for x, y in zip(seen, seen[1:])), "a seq repeated or out of order"
    assert our_clients(ha.replica), "the nodes write to the promoted replica"
    # The new primary has another replication history: a new epoch, the
    # same on both nodes, announced once.
    e1 = live_seq(rws.open(a))[0]
    assert e1 != e0 and live_seq(rws.open(b))[0] == e1
    assert "get a new epoch" in a.stderr + b.stderr
    # Clients that saw ticks before the failover: never a silent gap.
    for seen, other in ((seen_a, b), (seen_b, a)):
        conf = recover_either_way(rws.open(other), seen[-1], e0)
        assert conf["epochs"][SYM] == e1 and conf["recovered"][SYM] is False, conf
    # Within the new epoch recovery works across nodes again.
    ws = rws.open(b)
    epoch, snap = live_seq(ws)
    ws.close()
    publish_n(pub, 7)
    ws2 = rws.open(a)
    conf = recover(ws2, snap, epoch)
    assert conf["recovered"] == {SYM: True}, conf
    assert read_seqs(ws2, SYM, snap + 7) == list(range(snap + 1, snap + 8))
    assert health(a)["status"] == health(b)["status"] == "healthy"


def test_switch_master_with_the_old_primary_alive(ha, sgw, rws):
    """SENTINEL FAILOVER: the old primary lives on as a replica. The node
    follows +switch-master, leaves the old primary, writes its state back
    on the new one and re-subscribes; the numbering goes on."""
    a = sgw(ha)
    pub = rws.open(a, token=mint("pub1", "publisher"))
    ws = rws.open(a)
    e0 = live_seq(ws)[0]
    publish_n(pub, 3)
    assert read_seqs(ws, SYM, 3) == [1, 2, 3]
    old, new = ha.primary, ha.replica
    c = ha.sentinel.client()
    try:
        assert c.execute_command("SENTINEL", "FAILOVER", MASTER)
    finally:
        c.close()
    wait_until(lambda: ha.sentinel.primary()[1] == new.port, 30, "the sentinel switched")
    wait_until(lambda: len(our_clients(new)) == 2 and our_clients(old) == [], 30, "the node on the new primary only")
    wait_redis_up(a)
    nc = new.client()
    try:
        wait_until(lambda: any(SYM in v for v in nc.hgetall("websocket:subscriptions").values()), 10,
                   "the subscriptions written back")
        assert len(nc.smembers("websocket:nodes")) == 1
    finally:
        nc.close()
    publish_n(pub, 3)
    # Re-subscribed; another replication history: a new epoch, and the
    # numbering goes on after a visible jump of 1,000,000.
    assert read_seqs(ws, SYM, JUMP + 6) == [JUMP + 4, JUMP + 5, JUMP + 6]
    assert live_seq(rws.open(a))[0] != e0


def test_failover_that_lost_published_ticks_changes_the_epoch(ha, sgw, sgw_unmanaged, rws):
    """The hole the epoch rule closes. The replica stops (SIGSTOP) and so
    misses ticks 6..10, which node B's client received; then B and the
    primary die together, so no node remembers 6..10. The promoted replica
    numbers new ticks from 6 again: a client recovering from seq 10 under
    the old epoch would get 11, 12 as if nothing were missing. The new
    primary's other replication history gives the symbol a new epoch, so
    the client gets recovered:false and the snapshot instead."""
    a = sgw(ha)  # the publisher's node: no subscriber of SYM, so it keeps no seq of its own
    b = sgw_unmanaged(ha)
    pub = rws.open(a, token=mint("pub1", "publisher"))
    ws = rws.open(b)
    e0 = live_seq(ws)[0]
    publish_n(pub, 5)
    assert read_seqs(ws, SYM, 5) == [1, 2, 3, 4, 5]
    rc = ha.replica.client()
    try:
        wait_until(lambda: rc.get("websocket:seq:" + SYM) == "5", 10, "ticks 1..5 on the replica")
    finally:
        rc.close()
    os.kill(ha.replica.proc.pid, signal.SIGSTOP)
    try:
        publish_n(pub, 5)
        assert read_seqs(ws, SYM, 10) == [6, 7, 8, 9, 10]
        b.kill()
        ha.primary.kill()
    finally:
        os.kill(ha.replica.proc.pid, signal.SIGCONT)
    wait_until(lambda: ha.sentinel.primary()[1] == ha.replica.port, 60, "the sentinel promoted the replica")
    wait_redis_up(a, 30)
    publish_n(pub, 7)
    c = rws.open(a)
    conf = recover_either_way(c, 10, e0)
    assert conf["recovered"] == {SYM: False} and conf["epochs"][SYM] != e0, conf


def test_no_sentinel_answers_then_one_does(ha, sgw):
    """The first sentinel refuses connections, the second is stopped
    (SIGSTOP): each question is bounded by redis.timeout_ms, the node is
    degraded and keeps asking; once the sentinel resumes, it is up."""
    os.kill(ha.sentinel.proc.pid, signal.SIGSTOP)
    try:
        gw = sgw(ha, "--redis.timeout_ms=300", sentinels="127.0.0.1:%d,127.0.0.1:%d"
                 % (ha.dead_port(), ha.sentinel.port), wait_up=False)
        wait_until(lambda: "no sentinel named a primary" in gw.stderr, 15, "the round given up")
        assert "sentinel timed out" in gw.stderr
        hl = health(gw)
        assert hl["status"] == "degraded" and hl["checks"]["redis"] == "down", hl
    finally:
        os.kill(ha.sentinel.proc.pid, signal.SIGCONT)
    wait_redis_up(gw, 15)
    assert len(our_clients(ha.primary)) == 2


def test_a_sentinel_naming_a_replica_is_never_written_to(tmp_path, sgw, rws):
    h = HASet(tmp_path, monitor="replica")
    try:
        gw = sgw(h, wait_up=False)
        wait_until(lambda: "not a primary" in gw.stderr, 15, "the node refusing the replica")
        hl = health(gw)
        assert hl["status"] == "degraded" and hl["checks"]["redis"] == "down", hl
        c = h.replica.client()
        try:
            stats = c.info("commandstats")
            assert c.keys("websocket:*") == []
        finally:
            c.close()
        written = [k for k in stats if k.split("_", 1)[1] in ("eval", "evalsha", "set", "sadd", "hset", "del")]
        assert written == [], stats
        # The node serves its own clients meanwhile.
        pub = rws.open(gw, token=mint("pub1", "publisher"))
        ws = rws.open(gw)
        live_seq(ws)
        publish_n(pub, 3)
        assert read_seqs(ws, SYM, 3)[-1] == 3
        assert get_metrics(gw)["tickgate_redis_up"] == 0
    finally:
        h.kill()


@pytest.mark.parametrize("flags,needle", [
    (["--redis.sentinels=127.0.0.1:26379"], "redis.sentinels: needs redis.sentinel_master"),
    (["--redis.sentinel_master=m"], "redis.sentinel_master: needs redis.sentinels"),
    (["--redis.sentinels=nohost", "--redis.sentinel_master=m"], "redis.sentinels"),
    (["--redis.sentinels=127.0.0.1:0", "--redis.sentinel_master=m"], "redis.sentinels"),
    (["--redis.sentinels=" + ",".join(["127.0.0.1:1"] * 17), "--redis.sentinel_master=m"], "redis.sentinels"),
], ids=["no-master", "no-sentinels", "not-hostport", "port-0", "too-many"])
def test_bad_sentinel_config_is_refused(flags, needle):
    p = subprocess.run([tickgate_bin(), "--server.listen=127.0.0.1:0"] + flags, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    err = p.stderr.decode()
    assert p.returncode != 0 and needle in err, (p.returncode, err)
    assert b"listening" not in p.stdout
