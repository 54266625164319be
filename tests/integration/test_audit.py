"""The audit log (contract section 7): JSON lines with ts (ISO 8601 UTC with
milliseconds), event, client_id, user_id, ip and details for
CONNECTION_OPENED, CONNECTION_CLOSED, AUTH_FAILED, MESSAGE_RECEIVED (not for
heartbeats), SUBSCRIPTION_ADDED, SUBSCRIPTION_REMOVED, RATE_LIMITED,
SECURITY_VIOLATION, IP_BLOCKED, IP_UNBLOCKED and ADMIN_ACTION; no credential
in any log; nothing dropped under load; SIGTERM flushes every event.

The writer is asynchronous: tests poll the file (or the written counter)
with a deadline, or stop the server, which flushes."""
import collections
import datetime
import hashlib
import json
import re
import signal
import time

import wsraw
from conftest import OTHER_SECRET, SECRET, mint, raise_nofile, wait_metrics
from sec_helpers import api, assert_refused, events_of, read_audit, sgw, sws, wait_audit  # noqa: F401

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EVENTS = {"CONNECTION_OPENED", "CONNECTION_CLOSED", "AUTH_FAILED", "MESSAGE_RECEIVED", "SUBSCRIPTION_ADDED",
          "SUBSCRIPTION_REMOVED", "RATE_LIMITED", "SECURITY_VIOLATION", "IP_BLOCKED", "IP_UNBLOCKED", "ADMIN_ACTION"}
KEYS = {"ts", "event", "client_id", "user_id", "ip", "details"}


def parse_ts(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def assert_line_format(e, t0, t1):
    assert set(e) == KEYS, e
    assert e["event"] in EVENTS, e
    assert isinstance(e["ts"], str) and TS_RE.match(e["ts"]), e
    assert t0 - 1 <= parse_ts(e["ts"]) <= t1 + 1, (e, t0, t1)
    assert isinstance(e["details"], dict), e
    for k in ("client_id", "user_id", "ip"):
        assert e[k] is None or isinstance(e[k], str), e


def stored(key):
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_audit_session_events(sgw, sws, tmp_path):
    api_key = "audit-api-key-5b8e1d0c"
    bad_key = "wrong-api-key-0c1d8e5b"
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [
        {"id": "t1", "role": "trader", "active": True, "api_keys": [stored(api_key)]},
        {"id": "root", "role": "admin", "active": True}]}))
    gw = sgw("--limits.max_messages_per_minute=3", "--auth.users_file=" + str(users))
    t0 = time.time()
    tok_t = mint("t1", "trader")
    tok_admin = mint("root", "admin")
    tok_bad = mint("t1", "trader", secret=OTHER_SECRET)
    tok_bad2 = mint("t1", "admin", secret=OTHER_SECRET, ttl=7200)
    tok_query = mint("t1", "viewer", ttl=1800)

    # A trader: subscribe, heartbeat (not audited), unsubscribe, then the
    # 4th message of the minute is rate limited.
    t = sws.open(gw, token=tok_t)
    cid_t = t.hello["client_id"]
    t.subscribe(["AAPL", "MSFT"], id="s")
    assert t.request({"type": "heartbeat", "id": "h"})["type"] == "heartbeat_ack"
    assert t.request({"type": "unsubscribe", "symbols": ["MSFT"], "id": "u"})["type"] == "unsubscription_confirmed"
    r = t.request({"type": "heartbeat", "id": "rl"})
    assert r["code"] == "rate_limited", r
    # Credentials in the query string and the API key header/query work...
    q = sws.open(gw, query="?token=" + tok_query, src="127.0.0.2")
    k = sws.open(gw, headers={"X-API-Key": api_key})
    kq = sws.open(gw, query="?api_key=" + api_key)
    # ...and failures at the handshake are audited (no client id yet).
    assert_refused(sws.handshake(gw, token=tok_bad), 401)
    assert_refused(sws.handshake(gw, headers={"X-API-Key": bad_key}), 401)
    # An anonymous client: a forbidden message and a failed authenticate.
    a = sws.open(gw)
    cid_a = a.hello["client_id"]
    assert a.request({"type": "publish", "updates": [], "id": 1})["code"] == "forbidden"
    assert a.request({"type": "authenticate", "token": tok_bad2, "id": 2})["code"] == "auth_failed"
    # Disconnects: a clean close and one without a close frame.
    t.raw.send_close(1000)
    t.raw.expect_close(1000, reply=False)
    a.raw.close()
    for c in (q, k, kq):
        c.raw.send_close(1000)
        c.raw.expect_close(1000, reply=False)
    # Admin actions.
    assert api(gw, "POST", "/api/admin/block_ip", token=tok_admin, body={"ip": "127.0.0.9", "duration_s": 30}) \
        .status == 200
    assert api(gw, "POST", "/api/admin/unblock_ip", token=tok_admin, body={"ip": "127.0.0.9"}).status == 200

    def complete(ev):
        return (len(events_of(ev, "CONNECTION_CLOSED")) == 5 and events_of(ev, "IP_UNBLOCKED")
                and len(events_of(ev, "ADMIN_ACTION")) == 2)

    ev = wait_audit(gw, complete, timeout=10, what="the session's audit events")
    t1 = time.time()
    for e in ev:
        assert_line_format(e, t0, t1)
    assert {e["event"] for e in ev} == EVENTS, sorted({e["event"] for e in ev})

    # The trader's events, in order.
    mine = [e for e in ev if e["client_id"] == cid_t]
    for e in mine:
        assert (e["user_id"], e["ip"]) == ("t1", "127.0.0.1"), e
    names = [e["event"] for e in mine]
    assert names[:5] == ["CONNECTION_OPENED", "MESSAGE_RECEIVED", "SUBSCRIPTION_ADDED", "MESSAGE_RECEIVED",
                         "SUBSCRIPTION_REMOVED"], names
    assert sorted(names[5:7]) == ["RATE_LIMITED", "SECURITY_VIOLATION"], names
    assert names[7:] == ["SUBSCRIPTION_REMOVED", "CONNECTION_CLOSED"], names
    assert mine[0]["details"].get("role") == "trader", mine[0]
    assert [e["details"].get("type") for e in mine if e["event"] == "MESSAGE_RECEIVED"] == ["subscribe",
                                                                                            "unsubscribe"]
    assert sorted(mine[2]["details"]["symbols"]) == ["AAPL", "MSFT"], mine[2]
    assert mine[4]["details"]["symbols"] == ["MSFT"], mine[4]
    viol = [e for e in mine if e["event"] == "SECURITY_VIOLATION"]
    assert len(viol) == 1 and viol[0]["details"].get("kind") == "rate_limited", viol
    assert mine[7]["details"]["symbols"] == ["AAPL"], mine[7]
    closed = mine[-1]["details"]
    assert closed.get("code") == 1000 and isinstance(closed.get("reason"), str) and closed["reason"], closed

    # The anonymous client's.
    theirs = [e for e in ev if e["client_id"] == cid_a]
    for e in theirs:
        assert e["user_id"] is None and e["ip"] == "127.0.0.1", e
    kinds = [e["details"].get("kind") for e in theirs if e["event"] == "SECURITY_VIOLATION"]
    assert kinds == ["forbidden", "auth_failed"], theirs
    inband = [e for e in theirs if e["event"] == "AUTH_FAILED"]
    assert len(inband) == 1, theirs
    mr = [e["details"].get("type") for e in theirs if e["event"] == "MESSAGE_RECEIVED"]
    assert "authenticate" in mr and set(mr) <= {"authenticate", "publish"}, mr
    closed = [e for e in theirs if e["event"] == "CONNECTION_CLOSED"]
    assert len(closed) == 1 and "code" in closed[0]["details"] and closed[0]["details"].get("reason"), closed
    assert closed[0]["details"]["reason"] != mine[-1]["details"]["reason"], "abrupt and clean close look alike"

    # Handshake failures: two, with the client's IP.
    hs = [e for e in ev if e["event"] == "AUTH_FAILED" and e["client_id"] is None]
    assert len(hs) == 2 and all(e["ip"] == "127.0.0.1" for e in hs), hs
    # Connection events of the other clients carry their identity and IP.
    opened = {e["client_id"]: e for e in events_of(ev, "CONNECTION_OPENED")}
    assert (opened[q.hello["client_id"]]["user_id"], opened[q.hello["client_id"]]["ip"]) == ("t1", "127.0.0.2")
    assert opened[k.hello["client_id"]]["user_id"] == "t1"
    # Admin actions and the IP block itself.
    actions = [e["details"].get("action") for e in events_of(ev, "ADMIN_ACTION")]
    assert actions == ["block_ip", "unblock_ip"], actions
    assert all(e["user_id"] == "root" for e in events_of(ev, "ADMIN_ACTION"))
    assert [e["ip"] for e in events_of(ev, "IP_BLOCKED")] == ["127.0.0.9"]
    assert [e["ip"] for e in events_of(ev, "IP_UNBLOCKED")] == ["127.0.0.9"]
    # No MESSAGE_RECEIVED for heartbeats, anywhere.
    assert not [e for e in ev if e["event"] == "MESSAGE_RECEIVED" and e["details"].get("type") == "heartbeat"]

    # Secrets never appear: not in the audit file, not in the server's output.
    assert gw.stop() == 0
    blob = open(gw.audit_path, "rb").read().decode("utf-8") + gw.stdout + gw.stderr
    for name, s in [("trader JWT", tok_t), ("admin JWT", tok_admin), ("bad JWT", tok_bad), ("bad JWT 2", tok_bad2),
                    ("query JWT", tok_query), ("API key", api_key), ("wrong API key", bad_key),
                    ("JWT secret", SECRET)]:
        assert s not in blob, "%s appears in a log" % name
        if s.count(".") == 2:
            assert s.split(".")[2] not in blob, "%s signature appears in a log" % name


def frames_for(messages):
    return b"".join(wsraw.build_frame(wsraw.OP_TEXT, json.dumps(m)) for m in messages)


def pairs(n, id_prefix=""):
    """n messages alternating subscribe/unsubscribe AAPL, starting with subscribe."""
    out = []
    for i in range(n):
        kind = "subscribe" if i % 2 == 0 else "unsubscribe"
        out.append({"type": kind, "symbols": ["AAPL"], "id": "%s%d" % (id_prefix, i)})
    return out


def test_audit_no_drops_under_load(sgw, sws):
    nclients, nmsgs = 200, 50
    raise_nofile(4096)
    gw = sgw("--limits.max_connections_per_ip=%d" % (nclients + 10), "--limits.max_messages_per_minute=100000")
    conns = [sws.open(gw) for _ in range(nclients)]
    data = frames_for(pairs(nmsgs))
    for c in conns:
        c.raw.send(data)
    for c in conns:
        c.fence(timeout=30)
    # Per client: opened + nmsgs x (MESSAGE_RECEIVED + SUBSCRIPTION_ADDED/REMOVED).
    expected = nclients * (1 + 2 * nmsgs)
    m = wait_metrics(gw, lambda m: m["tickgate_audit_events_written_total"] >= expected, timeout=20,
                     what="%d audit events written" % expected)
    assert m["tickgate_audit_events_dropped_total"] == 0
    assert m["tickgate_audit_events_written_total"] == expected
    ev = read_audit(gw.audit_path)
    assert len(ev) == expected
    c = collections.Counter(e["event"] for e in ev)
    assert c == {"CONNECTION_OPENED": nclients, "MESSAGE_RECEIVED": nclients * nmsgs,
                 "SUBSCRIPTION_ADDED": nclients * nmsgs // 2, "SUBSCRIPTION_REMOVED": nclients * nmsgs // 2}, c


def test_sigterm_flushes_every_event(sgw, sws):
    nclients, nmsgs = 20, 30  # ends with an unsubscribe: nothing held at shutdown
    gw = sgw("--limits.max_messages_per_minute=100000")
    conns = [sws.open(gw, src="127.0.0.%d" % (1 + i % 3)) for i in range(nclients)]
    msgs = pairs(nmsgs)
    data = frames_for(msgs)
    for c in conns:
        c.raw.send(data)
    for c in conns:
        c.fence(timeout=20)
    gw.send_signal(signal.SIGTERM)
    for c in conns:
        c.raw.expect_close(1001, timeout=10)
    assert gw.wait(10) == 0, gw.output()
    subs = (nmsgs + 1) // 2
    per_client = collections.Counter({"CONNECTION_OPENED": 1, "MESSAGE_RECEIVED": nmsgs, "SUBSCRIPTION_ADDED": subs,
                                      "SUBSCRIPTION_REMOVED": nmsgs - subs, "CONNECTION_CLOSED": 1})
    expected = sum(per_client.values()) * nclients
    raw = open(gw.audit_path, "rb").read()
    assert raw.endswith(b"\n"), "last audit line is incomplete"
    ev = read_audit(gw.audit_path)
    assert len(ev) == expected, (len(ev), expected)
    got = collections.Counter(e["event"] for e in ev)
    assert got == collections.Counter({k: v * nclients for k, v in per_client.items()}), got
    for c in conns:
        cid = c.hello["client_id"]
        closed = [e for e in ev if e["client_id"] == cid and e["event"] == "CONNECTION_CLOSED"]
        assert len(closed) == 1 and closed[0]["details"]["code"] == 1001, closed
        mine = [e["event"] for e in ev if e["client_id"] == cid]
        assert mine[0] == "CONNECTION_OPENED" and mine[-1] == "CONNECTION_CLOSED", mine


def test_audit_lines_cannot_be_forged_through_identity(sgw, sws):
    """A user id with a newline and JSON in it stays inside its own line."""
    gw = sgw()
    evil = 'x"}\n{"ts":"2000-01-01T00:00:00.000Z","event":"IP_UNBLOCKED","ip":"6.6.6.6"\r\u2028'
    ws = sws.open(gw, token=mint(evil, "trader"))
    assert ws.hello["user_id"] == evil
    ws.raw.send_close(1000)
    ws.raw.expect_close(1000, reply=False)
    ev = wait_audit(gw, lambda ev: events_of(ev, "CONNECTION_CLOSED"), timeout=10, what="CONNECTION_CLOSED")
    raw = open(gw.audit_path, "rb").read()
    assert raw.count(b"\n") == len(ev) == 2, raw
    assert [e["event"] for e in ev] == ["CONNECTION_OPENED", "CONNECTION_CLOSED"], ev
    assert all(e["user_id"] == evil for e in ev), ev


def test_audit_queue_overflow_counted_never_blocking(sgw, sws):
    """With a tiny queue the writer cannot keep up: clients are still served
    at full speed and every event is either written or counted as dropped."""
    nclients, nmsgs = 50, 40
    gw = sgw("--audit.queue=16", "--limits.max_connections_per_ip=%d" % (nclients + 10),
             "--limits.max_messages_per_minute=100000")
    conns = [sws.open(gw) for _ in range(nclients)]
    data = frames_for(pairs(nmsgs))
    for c in conns:
        c.raw.send(data)
    for c in conns:
        c.fence(timeout=30)
    expected = nclients * (1 + 2 * nmsgs)
    m = wait_metrics(gw, lambda m: m["tickgate_audit_events_written_total"] + m["tickgate_audit_events_dropped_total"]
                     >= expected, timeout=20, what="every audit event written or dropped")
    written, dropped = m["tickgate_audit_events_written_total"], m["tickgate_audit_events_dropped_total"]
    assert written + dropped == expected, (written, dropped, expected)
    assert len(read_audit(gw.audit_path)) == written
