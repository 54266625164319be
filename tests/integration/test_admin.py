"""The admin API (contract section 1) and the WebSocket admin_broadcast
(section 4): listing connections across workers, blocking and unblocking
IPs, broadcasts to roles; credentials (401 / 403), bad bodies (400) and
wrong methods (405)."""
import json
import os
import time

import pytest

from conftest import get_metrics, mint, wait_stats, wait_until
from sec_helpers import api, assert_refused, sgw, sws  # noqa: F401 (fixtures)

ADMIN = mint("root", "admin")
SUPER = mint("boss", "super_admin")


def worker_of(client_id):
    """The worker a client id belongs to (the id's top 16 bits) - only used
    to make sure the test spreads its clients over both workers."""
    return int(client_id[2:], 16) >> 48


def assert_http_error(r, status, error=None):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    body = r.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    if error:
        assert body["error"] == error, body
    return body


# ---------------------------------------------------------------------------
# GET /api/admin/connections
# ---------------------------------------------------------------------------

def test_connections_lists_every_worker(sgw, sws):
    gw = sgw("--server.workers=2")
    t0 = int(time.time() * 1000)
    specs = [(None, None, "127.0.0.1"), (None, None, "127.0.0.2"), ("v1", "viewer", "127.0.0.1"),
             ("v2", "viewer", "127.0.0.3"), ("t1", "trader", "127.0.0.2"), ("a1", "admin", "127.0.0.1")]
    clients = []
    for i, (sub, role, src) in enumerate(specs):
        tok = mint(sub, role) if sub else None
        ws = sws.open(gw, token=tok, src=src)
        if i == len(specs) - 1:
            # Make sure both workers hold clients (the kernel picks the
            # worker; reconnect the last client until the other one has it).
            for _ in range(40):
                if len({worker_of(c.hello["client_id"]) for c, _ in clients} | {worker_of(ws.hello["client_id"])}) > 1:
                    break
                ws.close()
                ws = sws.open(gw, token=tok, src=src)
        clients.append((ws, (sub, role or "anonymous", src)))
    wait_stats(gw, lambda s: s["connections_open"] == 6, timeout=5, what="exactly 6 connections open")
    t1 = int(time.time() * 1000)
    workers = {worker_of(ws.hello["client_id"]) for ws, _ in clients}
    # Subscriptions show up in the list.
    clients[2][0].subscribe(["AAPL", "MSFT"])
    clients[4][0].subscribe(["TSLA"])
    for token in (ADMIN, SUPER):
        r = api(gw, "GET", "/api/admin/connections", token=token)
        assert r.status == 200, r
        assert r.headers.get("content-type", "").startswith("application/json"), r
        body = r.json()
        assert set(body) == {"connections"}, body
        listed = {c["id"]: c for c in body["connections"]}
        assert len(listed) == len(body["connections"]) == 6, body
        for ws, (sub, role, src) in clients:
            c = listed[ws.hello["client_id"]]
            assert c["user"] == sub and c["role"] == role and c["ip"] == src, c
            assert isinstance(c["connected_at"], int) and t0 - 1000 <= c["connected_at"] <= t1 + 1000, c
        assert listed[clients[2][0].hello["client_id"]]["subscriptions"] == 2
        assert listed[clients[4][0].hello["client_id"]]["subscriptions"] == 1
        assert listed[clients[0][0].hello["client_id"]]["subscriptions"] == 0
    assert len(workers) == 2, "could not spread the clients over both workers: %r" % workers


def test_connections_credentials_and_methods(sgw, sws):
    gw = sgw()
    sws.open(gw)
    assert_http_error(api(gw, "GET", "/api/admin/connections"), 401)
    assert_http_error(api(gw, "GET", "/api/admin/connections", token="not.a.token"), 401)
    assert_http_error(api(gw, "GET", "/api/admin/connections", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
                      401)
    assert_http_error(api(gw, "GET", "/api/admin/connections", token=mint("root", "admin", ttl=-3600)), 401)
    for role in ("viewer", "trader", "analyst", "publisher"):
        assert_http_error(api(gw, "GET", "/api/admin/connections", token=mint("x", role)), 403)
    r = api(gw, "POST", "/api/admin/connections", token=ADMIN, body={})
    assert_http_error(r, 405)
    assert "GET" in r.headers.get("allow", ""), r
    for path in ("/api/admin/block_ip", "/api/admin/unblock_ip", "/api/admin/broadcast"):
        r = api(gw, "GET", path, token=ADMIN)
        assert_http_error(r, 405)
        assert "POST" in r.headers.get("allow", ""), r
    assert_http_error(api(gw, "GET", "/api/admin/nothing", token=ADMIN), 404)


# ---------------------------------------------------------------------------
# block_ip / unblock_ip
# ---------------------------------------------------------------------------

def test_block_and_unblock_ip(sgw, sws):
    gw = sgw("--server.workers=2")
    victims = [sws.open(gw, src="127.0.0.2") for _ in range(3)]
    bystander = sws.open(gw, src="127.0.0.1")
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "127.0.0.2", "duration_s": 60})
    assert r.status == 200, r
    assert r.json() == {"blocked": "127.0.0.2", "duration_s": 60}, r.json()
    for v in victims:  # on whichever worker: all closed with 1008
        v.raw.expect_close(1008)
    body = assert_refused(sws.handshake(gw, src="127.0.0.2"), 403)
    assert body["error"] == "ip_blocked", body
    assert bystander.fence() == []
    sws.open(gw, src="127.0.0.3")
    assert get_metrics(gw)["tickgate_blocked_ips"] == 1
    r = api(gw, "POST", "/api/admin/unblock_ip", token=SUPER, body={"ip": "127.0.0.2"})
    assert r.status == 200, r
    assert r.json() == {"unblocked": "127.0.0.2", "was_blocked": True}, r.json()
    assert sws.open(gw, src="127.0.0.2").hello["role"] == "anonymous"
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0
    r = api(gw, "POST", "/api/admin/unblock_ip", token=ADMIN, body={"ip": "127.0.0.2"})
    assert r.json() == {"unblocked": "127.0.0.2", "was_blocked": False}, r.json()
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0


def test_block_without_duration_is_indefinite_and_ipv6_canonical(sgw, sws):
    gw = sgw()
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "127.0.0.2"})
    assert r.status == 200 and r.json()["blocked"] == "127.0.0.2", r
    assert_refused(sws.handshake(gw, src="127.0.0.2"), 403)
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "2001:DB8:0:0::1", "duration_s": 5})
    assert r.status == 200 and r.json() == {"blocked": "2001:db8::1", "duration_s": 5}, r
    assert get_metrics(gw)["tickgate_blocked_ips"] == 2


def test_block_of_an_ipv6_address_covers_its_slash64(sgw, sws):
    """One subscriber holds a whole IPv6 /64: blocking one of its addresses
    (::2) blocks the client at another one (::1), and its open connections
    are closed on every worker. limits.ipv6_prefix_len=128 keeps addresses
    apart. The gateway listens on both families: the admin speaks IPv4, the
    clients come from ::1."""
    from types import SimpleNamespace

    from test_security import ipv6_loopback
    if not ipv6_loopback():
        pytest.skip("IPv6 loopback (::1) is not available here")
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as f:
            if f.read().strip() != "0":
                pytest.skip("[::] sockets are IPv6-only here")
    except OSError:
        pass

    def start(*flags):
        gw = sgw(*flags, listen="[::]:0")
        return SimpleNamespace(host="127.0.0.1", port=gw.port), SimpleNamespace(host="::1", port=gw.port)

    admin, v6 = start("--server.workers=2")
    victims = [sws.open(v6) for _ in range(3)]
    r = api(admin, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "::2", "duration_s": 60})
    assert r.status == 200, r
    for v in victims:
        v.raw.expect_close(1008)
    body = assert_refused(sws.handshake(v6), 403)
    assert body["error"] == "ip_blocked", body
    # Unblocking any address of the /64 lifts it.
    r = api(admin, "POST", "/api/admin/unblock_ip", token=ADMIN, body={"ip": "::abcd"})
    assert r.status == 200 and r.json()["was_blocked"] is True, r
    assert sws.open(v6).hello["role"] == "anonymous"
    # Another /64 (0:0:0:1::2) is another client.
    r = api(admin, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "0:0:0:1::2"})
    assert r.status == 200, r
    assert sws.open(v6).hello["role"] == "anonymous"
    admin, v6 = start("--limits.ipv6_prefix_len=128")
    r = api(admin, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "::2"})
    assert r.status == 200, r
    assert sws.open(v6).hello["role"] == "anonymous"


def test_block_ip_with_huge_duration_still_blocks(sgw, sws):
    """duration_s is any non-negative integer: a huge one is (in effect)
    forever, never a block that silently does nothing. Refusing it with 400
    would be acceptable too."""
    gw = sgw()
    victim = sws.open(gw, src="127.0.0.2")
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "127.0.0.2", "duration_s": 2 ** 63 - 1})
    if r.status == 400:
        return
    assert r.status == 200, r
    victim.raw.expect_close(1008)
    assert_refused(sws.handshake(gw, src="127.0.0.2"), 403)


# ---------------------------------------------------------------------------
# admin blocks across restarts (security.blocks_file)
# ---------------------------------------------------------------------------

def saved_lines(path):
    try:
        with open(path) as f:
            return sorted(line.strip() for line in f if line.strip() and not line.startswith("#"))
    except FileNotFoundError:
        return []


def test_admin_blocks_survive_a_restart(sgw, sws, tmp_path):
    """Permanent and timed admin blocks are kept in security.blocks_file and
    restored at start (they were lost on a restart without Redis); unblocked
    ones, automatic and configured blocks are not kept."""
    path = str(tmp_path / "blocks.state")
    flags = ("--security.blocks_file=" + path, "--security.critical_violations=2", "--security.high_violations=100")
    gw = sgw(*flags, "--security.blocked_ips=127.0.0.9")
    for ip, body in (("127.0.0.2", {}), ("127.0.0.3", {"duration_s": 3600}), ("127.0.0.4", {})):
        r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body=dict(body, ip=ip))
        assert r.status == 200, r
    r = api(gw, "POST", "/api/admin/unblock_ip", token=ADMIN, body={"ip": "127.0.0.4"})
    assert r.status == 200 and r.json()["was_blocked"] is True, r
    # An automatic block (threat level critical) of 127.0.0.5.
    ws = sws.open(gw, src="127.0.0.5")
    ws.send({"type": "nope", "id": 1})
    ws.send({"type": "nope", "id": 2})
    ws.raw.expect_close(1008)
    assert_refused(sws.handshake(gw, src="127.0.0.5"), 403)
    assert gw.stop() == 0
    lines = saved_lines(path)
    assert [l.split()[0] for l in lines] == ["127.0.0.2", "127.0.0.3"], lines
    assert lines[0] == "127.0.0.2 0", lines
    assert abs(int(lines[1].split()[1]) - (time.time() + 3600)) < 60, lines

    gw = sgw(*flags)
    for ip in ("127.0.0.2", "127.0.0.3"):
        body = assert_refused(sws.handshake(gw, src=ip), 403)
        assert body["error"] == "ip_blocked", (ip, body)
    for ip in ("127.0.0.4", "127.0.0.5", "127.0.0.9"):
        assert sws.open(gw, src=ip).hello["role"] == "anonymous", ip
    assert get_metrics(gw)["tickgate_blocked_ips"] == 2
    # An unblock after the restart is kept too, within a second.
    r = api(gw, "POST", "/api/admin/unblock_ip", token=ADMIN, body={"ip": "127.0.0.2"})
    assert r.status == 200 and r.json()["was_blocked"] is True, r
    wait_until(lambda: [l.split()[0] for l in saved_lines(path)] == ["127.0.0.3"], 5, "unblock saved")
    # A block is on disk within a second: even SIGKILL does not lose it.
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "127.0.0.6"})
    assert r.status == 200, r
    wait_until(lambda: "127.0.0.6 0" in saved_lines(path), 5, "block saved")
    gw.kill()
    gw.start_failed = True  # killed on purpose: not a teardown failure
    assert not os.path.exists(path + ".tmp")
    gw = sgw(*flags)
    assert_refused(sws.handshake(gw, src="127.0.0.6"), 403)
    assert_refused(sws.handshake(gw, src="127.0.0.3"), 403)
    assert sws.open(gw, src="127.0.0.2").hello["role"] == "anonymous"


def test_admin_blocks_of_an_ipv6_prefix_survive_a_restart(sgw, sws, tmp_path):
    path = str(tmp_path / "blocks.state")
    gw = sgw("--security.blocks_file=" + path)
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "2001:db8:1:2:3::4"})
    assert r.status == 200, r
    assert gw.stop() == 0
    assert saved_lines(path) == ["2001:db8:1:2:: 0"]
    gw = sgw("--security.blocks_file=" + path)
    r = api(gw, "POST", "/api/admin/unblock_ip", token=ADMIN, body={"ip": "2001:db8:1:2::99"})
    assert r.status == 200 and r.json()["was_blocked"] is True, r


@pytest.mark.parametrize("content, line", [
    ("127.0.0.2\n", 1),
    ("# comment\n127.0.0.2 soon\n", 2),
    ("not-an-ip 0\n", 1),
    ("127.0.0.2 -5\n", 1),
    ("127.0.0.2 0\n" + "x" * 300 + "\n", 2),
])
def test_bad_blocks_file_refuses_start(sgw, tmp_path, content, line):
    """A list we cannot read is not silently an empty one: start is refused
    with the key, the file and the line."""
    from test_lifecycle import run_tickgate
    path = tmp_path / "blocks.state"
    path.write_text(content)
    rc, out, err = run_tickgate(["--server.listen=127.0.0.1:0", "--security.blocks_file=%s" % path,
                                 "--audit.path="])
    assert rc != 0 and "listening" not in out, (rc, out, err)
    assert "security.blocks_file" in err and str(path) in err and "line %d" % line in err, err


def test_blocks_file_expired_entries_dropped_and_unwritable_path_logged(sgw, sws, tmp_path):
    path = tmp_path / "blocks.state"
    past = int(time.time()) - 10
    path.write_text("127.0.0.2 %d\n127.0.0.3 0\n\n" % past)
    gw = sgw("--security.blocks_file=%s" % path)
    assert sws.open(gw, src="127.0.0.2").hello["role"] == "anonymous"
    assert_refused(sws.handshake(gw, src="127.0.0.3"), 403)
    wait_until(lambda: saved_lines(str(path)) == ["127.0.0.3 0"], 5, "expired entry dropped from the file")
    # A path that cannot be written: logged (once), the block still applies.
    bad = str(tmp_path / "missing-dir" / "blocks.state")
    gw = sgw("--security.blocks_file=" + bad)
    for ip in ("127.0.0.7", "127.0.0.8"):
        r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": ip})
        assert r.status == 200, r
        assert_refused(sws.handshake(gw, src=ip), 403)
    wait_until(lambda: "cannot write" in gw.stderr, 5, "write failure logged")
    assert gw.stderr.count("cannot write") == 1, gw.stderr


def test_block_ip_refused_for_a_blocked_admin(sgw, sws):
    gw = sgw()
    r = api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body={"ip": "127.0.0.1"})
    assert r.status == 200, r
    assert_http_error(api(gw, "GET", "/api/admin/connections", token=ADMIN), 403, "ip_blocked")
    # And every other path (docs/security.md).
    assert_http_error(api(gw, "GET", "/health"), 403, "ip_blocked")


@pytest.mark.parametrize("body", [b"not json", b"[]", b'"ip"', b"{}", b'{"ip": 7}', b'{"ip": "not-an-ip"}',
                                  b'{"ip": "127.0.0.256"}', b'{"ip": "10.0.0.0/8"}',
                                  b'{"ip": "127.0.0.2", "duration_s": -1}',
                                  b'{"ip": "127.0.0.2", "duration_s": "60"}',
                                  b'{"ip": "127.0.0.2", "duration_s": 1.5}', b""])
def test_block_ip_bad_body_400(sgw, sws, body):
    gw = sgw()
    assert_http_error(api(gw, "POST", "/api/admin/block_ip", token=ADMIN, body=body), 400)
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0
    sws.open(gw, src="127.0.0.2")


def test_block_unblock_credentials(sgw, sws):
    gw = sgw()
    body = {"ip": "127.0.0.2"}
    assert_http_error(api(gw, "POST", "/api/admin/block_ip", body=body), 401)
    assert_http_error(api(gw, "POST", "/api/admin/block_ip", token=mint("t", "trader"), body=body), 403)
    assert_http_error(api(gw, "POST", "/api/admin/block_ip", token=mint("v", "viewer"), body=body), 403)
    assert_http_error(api(gw, "POST", "/api/admin/unblock_ip", body=body), 401)
    assert_http_error(api(gw, "POST", "/api/admin/unblock_ip", token=mint("t", "trader"), body=body), 403)
    assert_http_error(api(gw, "POST", "/api/admin/unblock_ip", token=ADMIN, body=b"{"), 400)
    assert get_metrics(gw)["tickgate_blocked_ips"] == 0
    sws.open(gw, src="127.0.0.2")


# ---------------------------------------------------------------------------
# broadcasts
# ---------------------------------------------------------------------------

def open_audience(gw, sws):
    """Two traders, a viewer, an anonymous client and an admin."""
    return {
        "t1": sws.open(gw, token=mint("t1", "trader")),
        "t2": sws.open(gw, token=mint("t2", "trader"), src="127.0.0.2"),
        "v1": sws.open(gw, token=mint("v1", "viewer")),
        "anon": sws.open(gw),
        "adm": sws.open(gw, token=mint("a1", "admin")),
    }


def test_http_broadcast_to_roles(sgw, sws):
    gw = sgw("--server.workers=2")
    aud = open_audience(gw, sws)
    r = api(gw, "POST", "/api/admin/broadcast", token=ADMIN, body={"message": "hello", "roles": ["trader"]})
    assert r.status == 200, r
    assert r.json() == {"recipients": 2}, r.json()
    for name in ("t1", "t2"):
        m = aud[name].recv()
        assert m == {"type": "broadcast", "message": "hello", "from": "root"}, m
    for name in ("t1", "t2", "v1", "anon", "adm"):
        assert aud[name].fence() == [], name
    # Several roles.
    r = api(gw, "POST", "/api/admin/broadcast", token=SUPER, body={"message": "two", "roles": ["viewer", "anonymous"]})
    assert r.json() == {"recipients": 2}, r.json()
    for name in ("v1", "anon"):
        assert aud[name].recv() == {"type": "broadcast", "message": "two", "from": "boss"}
    # No roles: everyone on /ws.
    r = api(gw, "POST", "/api/admin/broadcast", token=ADMIN, body={"message": "all"})
    assert r.json() == {"recipients": 5}, r.json()
    for name, ws in aud.items():
        assert ws.recv() == {"type": "broadcast", "message": "all", "from": "root"}, name
    for ws in aud.values():
        assert ws.fence() == []


@pytest.mark.parametrize("body", [b"nope", b"[]", b"{}", b'{"message": ""}', b'{"message": 5}',
                                  b'{"message": "x", "roles": "trader"}', b'{"message": "x", "roles": ["king"]}',
                                  b'{"message": "x", "roles": [1]}'])
def test_http_broadcast_bad_body_400(sgw, sws, body):
    gw = sgw()
    ws = sws.open(gw)
    assert_http_error(api(gw, "POST", "/api/admin/broadcast", token=ADMIN, body=body), 400)
    assert ws.fence() == []


def test_http_broadcast_length_bound_and_credentials(sgw, sws):
    gw = sgw()
    ws = sws.open(gw)
    at = "é" * 4096  # characters, not bytes
    r = api(gw, "POST", "/api/admin/broadcast", token=ADMIN, body={"message": at})
    assert r.status == 200 and r.json() == {"recipients": 1}, r
    assert ws.recv()["message"] == at
    assert_http_error(api(gw, "POST", "/api/admin/broadcast", token=ADMIN, body={"message": "x" * 4097}), 400)
    assert_http_error(api(gw, "POST", "/api/admin/broadcast", body={"message": "x"}), 401)
    assert_http_error(api(gw, "POST", "/api/admin/broadcast", token=mint("t", "trader"), body={"message": "x"}), 403)
    assert_http_error(api(gw, "POST", "/api/admin/broadcast", token=mint("v", "viewer"), body={"message": "x"}), 403)
    assert ws.fence() == []


def test_ws_admin_broadcast(sgw, sws):
    gw = sgw("--server.workers=2")
    aud = open_audience(gw, sws)
    adm = aud["adm"]
    adm.send({"type": "admin_broadcast", "message": "market closes early", "roles": ["trader"], "id": "b1"})
    r = adm.recv()
    assert r == {"type": "broadcast_sent", "recipients": 2, "id": "b1"}, r
    for name in ("t1", "t2"):
        assert aud[name].recv() == {"type": "broadcast", "message": "market closes early", "from": "a1"}
    for ws in aud.values():
        assert ws.fence() == []
    # Without roles: everyone, the sender included (in either order).
    adm.send({"type": "admin_broadcast", "message": "all hands", "id": 7})
    got = [adm.recv(), adm.recv()]
    assert {"type": "broadcast_sent", "recipients": 5, "id": 7} in got, got
    assert {"type": "broadcast", "message": "all hands", "from": "a1"} in got, got
    for name in ("t1", "t2", "v1", "anon"):
        assert aud[name].recv() == {"type": "broadcast", "message": "all hands", "from": "a1"}
    # At the bound (4096 characters, multi-byte) and one past it.
    at = "ü" * 4096
    adm.send({"type": "admin_broadcast", "message": at, "roles": ["viewer"], "id": "max"})
    assert adm.recv() == {"type": "broadcast_sent", "recipients": 1, "id": "max"}
    assert aud["v1"].recv()["message"] == at
    r = adm.request({"type": "admin_broadcast", "message": "x" * 4097, "id": "over"})
    assert r["type"] == "error" and r["code"] == "invalid_message" and r["id"] == "over", r
    r = adm.request({"type": "admin_broadcast", "message": "x", "roles": ["king"], "id": "role"})
    assert r["type"] == "error" and r["code"] == "invalid_message" and r["id"] == "role", r
    # A trader (or anyone else without admin_broadcast) is refused.
    for name in ("t1", "v1", "anon"):
        r = aud[name].request({"type": "admin_broadcast", "message": "spoof", "id": "x"})
        assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == "x", (name, r)
    for ws in aud.values():
        assert ws.fence() == []
    m = get_metrics(gw)
    assert m['tickgate_security_violations_total{kind="forbidden"}'] == 3


def test_admin_api_with_api_key(sgw, sws, tmp_path):
    import hashlib

    def stored(k):
        return "sha256:" + hashlib.sha256(k.encode()).hexdigest()

    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [
        {"id": "ops", "role": "admin", "api_keys": [stored("ops-key-0123456789")]},
        {"id": "tr", "role": "trader", "api_keys": [stored("trader-key-0123456789")]}]}))
    gw = sgw("--auth.users_file=" + str(users))
    ws = sws.open(gw, headers={"X-API-Key": "trader-key-0123456789"})
    r = api(gw, "GET", "/api/admin/connections", api_key="ops-key-0123456789")
    assert r.status == 200 and [c["user"] for c in r.json()["connections"]] == ["tr"], r
    assert_http_error(api(gw, "GET", "/api/admin/connections", api_key="trader-key-0123456789"), 403)
    assert_http_error(api(gw, "GET", "/api/admin/connections", api_key="nope"), 401)
    # A JWT whose sub is an admin in the file, whatever its own role claim.
    assert api(gw, "GET", "/api/admin/connections", token=mint("ops", "viewer")).status == 200
    # A JWT claiming admin for a trader in the file: the file's role wins.
    assert_http_error(api(gw, "GET", "/api/admin/connections", token=mint("tr", "admin")), 403)
    r = api(gw, "POST", "/api/admin/broadcast", api_key="ops-key-0123456789", body={"message": "m"})
    assert r.json() == {"recipients": 1}, r
    assert ws.recv() == {"type": "broadcast", "message": "m", "from": "ops"}
