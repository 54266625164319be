"""Helpers for the Redis Cluster tests (test_redis_cluster.py).

- RedisCluster: three real `redis-server --cluster-enabled yes` primaries on
  free loopback ports (each with its bus port, port + 10000, free too), no
  persistence, joined by `redis-cli --cluster create ... --cluster-replicas 0
  --cluster-yes`; start() returns once every node reports cluster_state:ok.
  A killed primary restarted on its port keeps its nodes-<port>.conf, so it
  serves the same slots again - empty.
- cluster: fixture yielding a started RedisCluster, killed at teardown.
- cgw: fixture factory starting a tickgate node on the cluster
  (--redis.cluster=true, --redis.url naming one primary) and waiting until
  /health reports checks.redis == "up"."""
import socket
import subprocess

import pytest

from conftest import wait_until
from redis_helpers import RedisServer, gateway_args, wait_redis_up

NODE_TIMEOUT_MS = 1500


def _free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cluster_port(taken):
    """A free port below 55535 whose bus port (+10000) is free too."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port < 55535 and port != 6379 and port not in taken and _free(port + 10000):
            return port
    pytest.fail("no free port pair (port, port + 10000) for a cluster node")


class RedisCluster:
    def __init__(self, workdir, n=3):
        self.nodes = []
        for _ in range(n):
            port = cluster_port([x.port for x in self.nodes])
            self.nodes.append(RedisServer(workdir, port=port, extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes-%d.conf" % port,
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS)]))

    def start(self):
        for node in self.nodes:
            node.start()
        addrs = ["127.0.0.1:%d" % x.port for x in self.nodes]
        r = subprocess.run(["redis-cli", "--cluster", "create"] + addrs + ["--cluster-replicas", "0", "--cluster-yes"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, r.stdout.decode(errors="replace")
        self.wait_ok()
        return self

    def state_ok(self, node):
        try:
            c = node.client()
            try:
                return "cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
            finally:
                c.close()
        except Exception:
            return False

    def wait_ok(self, timeout=20):
        wait_until(lambda: all(self.state_ok(x) for x in self.nodes), timeout, "cluster_state:ok on every node",
                   interval=0.05)

    def keyslot(self, key):
        c = self.nodes[0].client()
        try:
            return int(c.execute_command("CLUSTER", "KEYSLOT", key))
        finally:
            c.close()

    def owner(self, key):
        """The node serving key's slot."""
        slot = self.keyslot(key)
        c = self.nodes[0].client()
        try:
            for lo, hi, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if lo <= slot <= hi:
                    return next(x for x in self.nodes if x.port == int(primary[1]))
        finally:
            c.close()
        raise AssertionError("slot %d not served" % slot)

    def get(self, key):
        c = self.owner(key).client()
        try:
            return c.execute_command("GET", key) if c.type(key) == "string" else c.type(key)
        finally:
            c.close()

    def kill(self):
        for node in self.nodes:
            node.kill()


@pytest.fixture
def cluster(tmp_path):
    c = RedisCluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.kill()


@pytest.fixture
def cgw(gateway, tmp_path):
    n = [0]

    def start(cl, node=0, *flags):
        n[0] += 1
        gw = gateway(*gateway_args(cl.nodes[node], tmp_path / ("audit-c%d.log" % n[0]), "--redis.cluster=true",
                                   *flags))
        wait_redis_up(gw, 20)
        return gw

    return start
