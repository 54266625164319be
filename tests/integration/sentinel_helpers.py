"""Helpers for the Redis Sentinel tests (test_sentinel.py): real
redis-server processes — a primary, a replica of it, and one sentinel
(`redis-server <conf> --sentinel`, quorum 1, down-after 500 ms, so a
failover takes a few seconds) — and gateways that find the primary through
the sentinel.

- HASet(tmp_path, monitor="primary"|"replica"): starts the three and waits
  until the replica is in sync and the sentinel knows it. monitor="replica"
  points the sentinel at the replica instead (a sentinel naming a server
  that is not a primary).
- sgw / sgw_unmanaged: fixtures, factory sgw(ha, *flags, sentinels=None, wait_up=True) -> a
  gateway (conftest's `gateway`: SIGTERMed and exit 0 at teardown) with
  redis.sentinels and redis.sentinel_master and no redis.url.
"""
import os

import pytest

from conftest import SECRET_FLAG, Gateway, child_env, tickgate_bin, wait_until
from redis_helpers import REDIS_BIN, RedisServer, free_port, wait_redis_up

MASTER = "tgmaster"


class Sentinel(RedisServer):
    """One `redis-server --sentinel` monitoring 127.0.0.1:monitor_port."""

    def __init__(self, workdir, monitor_port, down_after_ms=500, failover_timeout_ms=3000):
        super().__init__(workdir)
        self.conf = os.path.join(self.workdir, "sentinel-%d.conf" % self.port)
        with open(self.conf, "w") as f:
            f.write("sentinel monitor %s 127.0.0.1 %d 1\n" % (MASTER, monitor_port))
            f.write("sentinel down-after-milliseconds %s %d\n" % (MASTER, down_after_ms))
            f.write("sentinel failover-timeout %s %d\n" % (MASTER, failover_timeout_ms))
        self.ready_line = b"+monitor master"

    def command(self):
        return [REDIS_BIN, self.conf, "--sentinel", "--port", str(self.port), "--bind", "127.0.0.1",
                "--daemonize", "no", "--dir", self.workdir, "--protected-mode", "no"]

    def primary(self):
        c = self.client()
        try:
            host, port = c.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
            return host, int(port)
        finally:
            c.close()

    def replica_ok(self):
        """The sentinel lists a replica that is up and linked to its primary."""
        c = self.client()
        try:
            for r in c.execute_command("SENTINEL", "replicas", MASTER):
                d = dict(zip(r[::2], r[1::2])) if isinstance(r, list) else r
                if "s_down" not in d.get("flags", "") and d.get("master-link-status") == "ok":
                    return True
            return False
        finally:
            c.close()


def info(srv, section):
    c = srv.client()
    try:
        return c.info(section)
    finally:
        c.close()


class HASet:
    def __init__(self, workdir, monitor="primary"):
        self.primary = RedisServer(workdir).start()
        self.replica = RedisServer(workdir, extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)]).start()
        wait_until(lambda: info(self.replica, "replication").get("master_link_status") == "up", 10,
                   "replica in sync")
        watched = self.primary if monitor == "primary" else self.replica
        self.sentinel = Sentinel(workdir, watched.port).start()
        if monitor == "primary":
            wait_until(self.sentinel.replica_ok, 15, "the sentinel knows the replica")

    def flags(self, sentinels=None):
        return ["--redis.sentinels=" + (sentinels or "127.0.0.1:%d" % self.sentinel.port),
                "--redis.sentinel_master=" + MASTER]

    def dead_port(self):
        return free_port()

    def kill(self):
        for s in (self.sentinel, self.replica, self.primary):
            s.kill()


@pytest.fixture
def ha(tmp_path):
    h = HASet(tmp_path)
    yield h
    h.kill()


def _flags(h, flags, sentinels):
    return [SECRET_FLAG, "--feed.simulator=false", "--limits.max_messages_per_minute=100000000"] + \
        h.flags(sentinels) + list(flags)


@pytest.fixture
def sgw(gateway):
    def start(h, *flags, sentinels=None, wait_up=True):
        gw = gateway(*_flags(h, flags, sentinels))
        if wait_up:
            wait_redis_up(gw)
        return gw

    return start


@pytest.fixture
def sgw_unmanaged(tmp_path):
    """As sgw, for gateways the test kills itself (no exit-0 check); any
    still running at teardown are killed."""
    started = []

    def start(h, *flags, sentinels=None):
        audit = tmp_path / ("audit-unmanaged-%d.log" % len(started))
        gw = Gateway([tickgate_bin(), "--server.listen=127.0.0.1:0", "--audit.path=%s" % audit,
                      "--security.blocks_file=%s.blocks" % audit] + _flags(h, flags, sentinels), child_env())
        started.append(gw)
        gw.wait_listening()
        wait_redis_up(gw)
        return gw

    yield start
    for gw in started:
        gw.kill()
