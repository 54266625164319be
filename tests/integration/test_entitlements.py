"""Entitlements, delayed data and throttling (PROTOCOL.md section 14):
symbol patterns from the JWT and the users file (the file wins), anonymous
patterns, not_entitled refusals that are no security violation, delayed
delivery with the original seq and timestamp, and throttled roles getting
the newest update at most N times a second with the trailing edge."""
import hashlib
import json
import signal
import time

from conftest import mint, get_metrics, wait_metrics, wait_until


def confirm(ws, symbols, id=None, recover=None):
    """Subscribes; returns (subscription_confirmed without its epochs (one per
    confirmed symbol) or None, {reason: [symbols]}, snapshots by symbol) from
    the replies up to a fence."""
    msg = {"type": "subscribe", "symbols": symbols}
    if id is not None:
        msg["id"] = id
    if recover is not None:
        msg["recover"] = recover
    ws.send(msg)
    conf, failed, snaps = None, {}, {}
    for m in ws.fence():
        if m["type"] == "subscription_confirmed":
            conf = dict(m)
            assert sorted(conf.pop("epochs")) == sorted(m["symbols"]), m
        elif m["type"] == "subscription_failed":
            failed[m["reason"]] = m["symbols"]
        elif m["type"] == "price_update" and m.get("snapshot"):
            snaps[m["symbol"]] = m
        else:
            raise AssertionError("unexpected %r" % m)
    return conf, failed, snaps


def user_token(sub="u1", role="viewer", **claims):
    return mint(sub, role, **claims)


def test_token_patterns_select_symbols(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, token=user_token(symbols=["AAPL", "MS*"]))
    conf, failed, snaps = confirm(ws, ["AAPL", "MSFT", "GOOGL", "TSLA"])
    assert conf["symbols"] == ["AAPL", "MSFT"] and "delayed" not in conf, conf
    assert failed == {"not_entitled": ["GOOGL", "TSLA"]}, failed
    assert set(snaps) == {"AAPL", "MSFT"}


def test_star_and_absent_claim_mean_every_symbol(tickgate, jclients):
    gw = tickgate()
    for tok in (user_token(symbols=["*"]), user_token()):
        ws = jclients.open(gw, token=tok)
        conf, failed, _ = confirm(ws, ["AAPL", "GOOGL"])
        assert conf["symbols"] == ["AAPL", "GOOGL"] and failed == {}, (conf, failed)


def test_empty_list_entitles_nothing_and_refusals_are_no_violation(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, token=user_token("u1", "super_admin", symbols=[]))
    # More refusals than security.high_violations (6): the connection stays.
    for i in range(10):
        conf, failed, _ = confirm(ws, ["AAPL"], id=i)
        assert conf is None and failed == {"not_entitled": ["AAPL"]}, (conf, failed)
    for req in ({"type": "get_history", "symbol": "AAPL"}, {"type": "analysis", "symbol": "AAPL"},
                {"type": "trade", "symbol": "AAPL", "side": "buy", "quantity": 1, "order_type": "market"}):
        r = ws.request(dict(req, id="q"))
        assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == "q", r
    assert ws.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
    m = get_metrics(gw)
    assert m['tickgate_security_violations_total{kind="forbidden"}'] == 0, m
    assert m['tickgate_entitlement_refusals_total{request="subscribe"}'] == 10, m
    assert m['tickgate_entitlement_refusals_total{request="query"}'] == 2, m
    assert m['tickgate_entitlement_refusals_total{request="trade"}'] == 1, m


def test_invalid_patterns_refuse_the_token(tickgate, jclients):
    gw = tickgate()
    for bad in (["aapl"], "AAPL", [1], ["A*B"], ["*X"]):
        r = jclients.handshake(gw, token=user_token(symbols=bad))
        assert r.status == 401, (bad, r.status)


def test_users_file_wins_over_token(tickgate, jclients, tmp_path):
    key = "entitled-api-key-0001"
    users = {"users": [
        {"id": "u1", "role": "viewer", "symbols": ["TSLA"]},
        {"id": "u2", "role": "viewer"},
        {"id": "u3", "role": "viewer", "delayed_symbols": ["JPM"], "symbols": [],
         "api_keys": ["sha256:" + hashlib.sha256(key.encode()).hexdigest()]},
    ]}
    p = tmp_path / "users.json"
    p.write_text(json.dumps(users))
    gw = tickgate("--auth.users_file=%s" % p)
    ws = jclients.open(gw, token=user_token("u1", symbols=["AAPL"]))
    conf, failed, _ = confirm(ws, ["AAPL", "TSLA"])
    assert conf["symbols"] == ["TSLA"] and failed == {"not_entitled": ["AAPL"]}, (conf, failed)
    # The file names nothing for u2: the token's list holds.
    ws = jclients.open(gw, token=user_token("u2", symbols=["AAPL"]))
    conf, failed, _ = confirm(ws, ["AAPL", "TSLA"])
    assert conf["symbols"] == ["AAPL"] and failed == {"not_entitled": ["TSLA"]}, (conf, failed)
    # API keys: the file's lists.
    ws = jclients.open(gw, headers={"X-API-Key": key})
    conf, failed, _ = confirm(ws, ["JPM", "AAPL"])
    assert conf == {"type": "subscription_confirmed", "symbols": ["JPM"], "delayed": ["JPM"]}, conf
    assert failed == {"not_entitled": ["AAPL"]}


def test_anonymous_symbols(tickgate, jclients):
    gw = tickgate("--auth.anonymous_symbols=AAPL, GOOG*")
    ws = jclients.open(gw)
    conf, failed, _ = confirm(ws, ["AAPL", "GOOGL", "MSFT"])
    assert conf["symbols"] == ["AAPL", "GOOGL"] and failed == {"not_entitled": ["MSFT"]}, (conf, failed)


def test_bad_anonymous_symbols_is_a_start_error(gateway):
    gw = gateway("--auth.anonymous_symbols=aapl", wait=False)
    assert gw.proc.wait(10) == 2
    gw.start_failed = True  # refused on purpose: not a teardown failure
    wait_until(lambda: "auth.anonymous_symbols" in gw.stderr, what="the start error")


def test_authenticate_applies_new_entitlements(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    ws.subscribe(["AAPL", "MSFT"])
    ws.send({"type": "authenticate", "token": user_token("u1", symbols=["MSFT"])})
    got = ws.fence()
    assert got[0]["type"] == "authenticated", got
    assert {"type": "subscription_failed", "symbols": ["AAPL"], "reason": "not_entitled"} in got, got
    pub = jclients.publisher(gw)
    pub.publish([{"symbol": "AAPL", "price": 1.0}, {"symbol": "MSFT", "price": 2.0}])
    m = ws.recv()
    assert m["symbol"] == "MSFT" and m["seq"] == 1, m
    assert ws.fence() == []


# --- throttling ---------------------------------------------------------

def test_throttle_burst_gives_first_and_trailing(tickgate, jclients):
    gw = tickgate("--throttle.viewer=2")
    viewer = jclients.open(gw, token=user_token("v1", "viewer"))
    trader = jclients.open(gw, token=user_token("t1", "trader"))
    viewer.subscribe(["AAPL"])
    trader.subscribe(["AAPL"])
    pub = jclients.publisher(gw)
    ts0 = int(time.time() * 1000)
    pub.publish([{"symbol": "AAPL", "price": 100 + i, "timestamp": ts0 + i} for i in range(50)])
    seqs = [trader.recv()["seq"] for _ in range(50)]
    assert seqs == list(range(1, 51)), seqs  # real time: every tick
    first = viewer.recv()
    last = viewer.recv(timeout=5)
    # The first at once, then the newest (never a stale one) as the trailing edge.
    assert first["seq"] == 1 and last["seq"] == 50 and last["price"] == 149, (first, last)
    assert last["timestamp"] == ts0 + 49
    assert viewer.fence() == []
    wait_metrics(gw, lambda m: m["tickgate_throttled_dropped_total"] == 48 and
                 m["tickgate_throttled_subscriptions"] == 1)


def test_sighup_moves_held_subscriptions_to_the_new_rate(tickgate, jclients, tmp_path):
    """[throttle] reloads on SIGHUP: a viewer subscribed while throttled is
    unthrottled by the reload without resubscribing; a broken reload
    changes nothing."""
    ini = tmp_path / "tickgate.ini"
    ini.write_text("[throttle]\nviewer = 2\n")
    gw = tickgate("--config=%s" % ini)
    viewer = jclients.open(gw, token=user_token("v1", "viewer"))
    viewer.subscribe(["AAPL"])
    wait_metrics(gw, lambda m: m["tickgate_throttled_subscriptions"] == 1)

    def hup(expect):
        start = len(gw.stderr.splitlines())
        gw.send_signal(signal.SIGHUP)
        line = wait_until(lambda: next((l for l in gw.stderr.splitlines()[start:]
                                         if "configuration reloaded" in l or "reload failed" in l), None),
                          what="the reload's outcome")
        assert expect in line, gw.stderr

    ini.write_text("[throttle]\nviewer = 5000\n")  # out of range: nothing changes
    hup("reload failed")
    ini.write_text("[throttle]\nviewer = 0\n")
    hup("configuration reloaded")
    wait_metrics(gw, lambda m: m["tickgate_throttled_subscriptions"] == 0)
    viewer.fence()  # the move's snapshot, if any
    pub = jclients.publisher(gw)
    ts0 = int(time.time() * 1000)
    pub.publish([{"symbol": "AAPL", "price": 100 + i, "timestamp": ts0 + i} for i in range(10)])
    seqs = [viewer.recv()["seq"] for _ in range(10)]
    assert seqs == list(range(1, 11)), seqs  # real time now: every tick
    assert "warn changed key not reloaded" not in gw.stderr, gw.stderr


def test_throttle_rate_over_a_stream(tickgate, jclients):
    """Ticks every ~20 ms for ~1.5 s to a role throttled at 5/s: the viewer
    gets at most 5 a second (by the ticks' own timestamps), in seq order,
    and the last tick (trailing edge)."""
    rate = 5
    gw = tickgate("--throttle.viewer=%d" % rate, "--limits.max_messages_per_minute=100000")
    viewer = jclients.open(gw, token=user_token("v1", "viewer"))
    viewer.subscribe(["AAPL"])
    pub = jclients.publisher(gw)
    n = 75
    for i in range(n):
        r = pub.publish([{"symbol": "AAPL", "price": 100 + i}])
        assert r["type"] == "published", r
        time.sleep(0.02)  # paces the feed only; nothing is asserted on it
    got = []
    while not got or got[-1]["seq"] != n:
        got.append(viewer.recv(timeout=5))
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs)), seqs
    span_s = (got[-1]["timestamp"] - got[0]["timestamp"]) / 1000.0
    # Each update is the newest when released, so its source timestamp is
    # at most one tick interval older than its release: a release every
    # 1/rate s gives at most span*rate + 2 updates by those timestamps.
    assert len(got) <= span_s * rate + 2, (len(got), span_s, seqs)
    assert len(got) >= 3, seqs
    assert viewer.fence() == []


# --- delayed data ---------------------------------------------------------

def test_delayed_symbols_keep_seq_and_timestamp(tickgate, jclients):
    delay_s = 2
    gw = tickgate("--feed.delay_s=%d" % delay_s)
    rt = jclients.open(gw, token=user_token("t1", "trader"))
    rt.subscribe(["AAPL"])
    dl = jclients.open(gw, token=user_token("u9", "super_admin", symbols=["MSFT"], delayed_symbols=["AA*"]))
    conf, failed, snaps = confirm(dl, ["AAPL", "MSFT", "GOOGL"])
    assert conf["symbols"] == ["AAPL", "MSFT"] and conf["delayed"] == ["AAPL"], conf
    assert failed == {"not_entitled": ["GOOGL"]}
    assert "AAPL" not in snaps  # no tick is delay_s old yet
    wait_metrics(gw, lambda m: m["tickgate_delayed_subscriptions"] == 1)
    pub = jclients.publisher(gw)
    pub.publish([{"symbol": "AAPL", "price": 123.5, "volume": 7}])
    live = rt.recv()
    # get_history for the delayed client does not show it yet.
    h = dl.request({"type": "get_history", "symbol": "AAPL"})
    assert h["type"] == "history" and all(u["seq"] != live["seq"] for u in h["updates"]), h
    m = dl.recv(timeout=delay_s + 5)
    received_ms = time.time() * 1000
    assert m["delayed"] is True and m["seq"] == live["seq"] and m["timestamp"] == live["timestamp"], (m, live)
    assert m["price"] == 123.5 and m["volume"] == 7
    assert received_ms - m["timestamp"] >= delay_s * 1000, (received_ms, m)
    del m["delayed"]
    assert m == live
    h = dl.request({"type": "get_history", "symbol": "AAPL"})
    assert h["updates"][-1]["seq"] == live["seq"], h
    a = dl.request({"type": "analysis", "symbol": "AAPL", "window_s": 60})
    assert a["type"] == "analysis_result" and a["count"] == 1 and a["close"] == 123.5, a
    # A new delayed subscriber gets the delayed snapshot at once.
    dl2 = jclients.open(gw, token=user_token("u8", "viewer", symbols=[], delayed_symbols=["*"]))
    conf, _, snaps = confirm(dl2, ["AAPL"])
    assert conf["delayed"] == ["AAPL"]
    s = snaps["AAPL"]
    assert s["delayed"] is True and s["snapshot"] is True and s["seq"] == live["seq"], s


def test_delayed_subscriber_joining_sees_the_recent_past(tickgate, jclients):
    """Ticks published before the first delayed subscriber joined are still
    delivered delay_s after they happened (the line is filled from the
    history), in seq order."""
    delay_s = 2
    gw = tickgate("--feed.delay_s=%d" % delay_s)
    pub = jclients.publisher(gw)
    t0 = int(time.time() * 1000)
    pub.publish([{"symbol": "AAPL", "price": 10 + i, "timestamp": t0 - 500 + 200 * i} for i in range(3)])
    dl = jclients.open(gw, token=user_token("u9", "viewer", symbols=[], delayed_symbols=["AAPL"]))
    confirm(dl, ["AAPL"])
    got = [dl.recv(timeout=delay_s + 5) for _ in range(3)]
    assert [m["seq"] for m in got] == [1, 2, 3], got
    for m in got:
        assert m["delayed"] is True
        assert time.time() * 1000 >= m["timestamp"] + delay_s * 1000
    assert dl.fence() == []


# --- recovery (PROTOCOL.md section 13) with entitlements -------------------

RATE = "--limits.max_messages_per_minute=100000000"


def epochs_of(gw, jclients, symbols):
    """The current epochs, as a real-time client's confirmation gives them."""
    ws = jclients.open(gw)
    conf = ws.request({"type": "subscribe", "symbols": symbols})
    ws.close()
    return conf["epochs"]


def recover_msgs(ws, symbols, recover):
    """Sends a recovering subscribe; returns every reply up to a fence."""
    ws.send({"type": "subscribe", "symbols": symbols, "recover": recover})
    return ws.fence()


def test_recover_throttled_or_delayed_gets_false_and_its_snapshot(tickgate, jclients):
    """Recovery is for real-time unthrottled subscriptions: a throttled
    stream skips seqs by design and a delayed one cannot be replayed into
    the past, so recover answers false with that mode's snapshot, and the
    subscription then flows in its mode. A real-time symbol of the same
    subscribe recovers."""
    gw = tickgate("--throttle.viewer=2", "--feed.delay_s=2", RATE)
    pub = jclients.publisher(gw)
    old = int(time.time() * 1000) - 10000  # AAPL ticks old enough for a delayed snapshot
    pub.publish([{"symbol": "AAPL", "price": 10 + i, "timestamp": old + i} for i in range(5)])
    pub.publish([{"symbol": "MSFT", "price": 20 + i} for i in range(5)])
    ep = epochs_of(gw, jclients, ["AAPL", "MSFT"])

    v = jclients.open(gw, token=user_token("v1", "viewer"))  # throttled at 2/s
    got = recover_msgs(v, ["AAPL"], {"AAPL": {"seq": 2, "epoch": ep["AAPL"]}})
    assert got[0] == {"type": "subscription_confirmed", "symbols": ["AAPL"], "epochs": {"AAPL": ep["AAPL"]},
                      "recovered": {"AAPL": False}}, got
    assert len(got) == 2 and got[1]["snapshot"] is True and got[1]["seq"] == 5, got
    pub.publish([{"symbol": "AAPL", "price": 30}])
    m = v.recv()  # the throttle's first update goes at once
    assert m["seq"] == 6 and "snapshot" not in m, m

    d = jclients.open(gw, token=user_token("d1", "super_admin", symbols=["MSFT"], delayed_symbols=["AAPL"]))
    got = recover_msgs(d, ["AAPL", "MSFT"], {"AAPL": {"seq": 2, "epoch": ep["AAPL"]},
                                             "MSFT": {"seq": 3, "epoch": ep["MSFT"]}})
    conf = got[0]
    assert conf["symbols"] == ["AAPL", "MSFT"] and conf["delayed"] == ["AAPL"], conf
    assert conf["recovered"] == {"AAPL": False, "MSFT": True}, conf
    snap = got[1]  # AAPL: the delayed snapshot (seq 5 is 10 s old; seq 6 is not)
    assert snap["symbol"] == "AAPL" and snap["snapshot"] is True and snap["delayed"] is True, snap
    assert snap["seq"] == 5, snap
    assert [(m["symbol"], m["seq"], "snapshot" in m) for m in got[2:]] == [("MSFT", 4, False), ("MSFT", 5, False)]
    # The delayed stream goes on in its mode: seq 6 delay_s after it happened.
    m = d.recv(timeout=10)
    assert m["symbol"] == "AAPL" and m["seq"] == 6 and m["delayed"] is True, m
    m = get_metrics(gw)
    assert m['tickgate_recoveries_total{result="recovered"}'] == 1, m
    assert m['tickgate_recoveries_total{result="missed"}'] == 2, m


def test_recover_of_a_symbol_not_entitled_is_refused(tickgate, jclients):
    gw = tickgate(RATE)
    pub = jclients.publisher(gw)
    pub.publish([{"symbol": s, "price": 10 + i} for i in range(3) for s in ("AAPL", "MSFT")])
    ep = epochs_of(gw, jclients, ["AAPL", "MSFT"])
    u = jclients.open(gw, token=user_token("u1", "viewer", symbols=["MSFT"]))
    rec = {s: {"seq": 1, "epoch": ep[s]} for s in ("AAPL", "MSFT")}
    got = recover_msgs(u, ["MSFT", "AAPL"], rec)
    assert got[0] == {"type": "subscription_confirmed", "symbols": ["MSFT"], "epochs": {"MSFT": ep["MSFT"]},
                      "recovered": {"MSFT": True}}, got
    assert got[1] == {"type": "subscription_failed", "symbols": ["AAPL"], "reason": "not_entitled"}, got
    assert [(m["symbol"], m["seq"]) for m in got[2:]] == [("MSFT", 2), ("MSFT", 3)], got
    # Only a refused symbol: no confirmation, nothing streams.
    got = recover_msgs(u, ["AAPL"], {"AAPL": rec["AAPL"]})
    assert got == [{"type": "subscription_failed", "symbols": ["AAPL"], "reason": "not_entitled"}], got
    pub.publish([{"symbol": "AAPL", "price": 50}, {"symbol": "MSFT", "price": 51}])
    m = u.recv()
    assert m["symbol"] == "MSFT" and m["seq"] == 4, m
    assert u.fence() == []
    m = get_metrics(gw)
    assert m['tickgate_entitlement_refusals_total{request="subscribe"}'] == 2, m
    assert m['tickgate_recoveries_total{result="recovered"}'] == 1, m
    assert m['tickgate_recoveries_total{result="missed"}'] == 0, m
    assert m['tickgate_security_violations_total{kind="forbidden"}'] == 0, m


def test_lanes_with_and_without_compression(tickgate, clients, jclients):
    """Throttled and delayed lanes hand each subscriber its own form of a
    tick: the shared compressed sibling or the plain frame to one that
    negotiated permessage-deflate, only ever the plain frame to one that did
    not (the raw client fails on an RSV1 frame it did not negotiate)."""
    from test_compression import open_deflate, recv_msg

    gw = tickgate("--throttle.viewer=5", "--feed.delay_s=1", "--ws.compression_min_bytes=64", RATE)
    pub = jclients.publisher(gw)
    tokens = [user_token("v1", "viewer"), user_token("d1", "super_admin", symbols=[], delayed_symbols=["AAPL"])]
    plain = [jclients.open(gw, token=t) for t in tokens]
    for ws in plain:
        assert confirm(ws, ["AAPL"])[0]["symbols"] == ["AAPL"]
    zs = [open_deflate(clients, gw, "/ws", headers={"Authorization": "Bearer " + t}) for t in tokens]
    for raw in zs:
        assert json.loads(recv_msg(raw)[1])["type"] == "connected"
        raw.send_text('{"type":"subscribe","symbols":["AAPL"]}')
        assert json.loads(recv_msg(raw)[1])["type"] == "subscription_confirmed"
    pub.publish([{"symbol": "AAPL", "price": 123.25}])
    for ws in plain:
        m = ws.recv(timeout=10)
        assert m["seq"] == 1 and m["price"] == 123.25, m
    for raw, delayed in zip(zs, (False, True)):
        m = {"snapshot": True}
        while m.get("snapshot"):  # the start price's snapshot first (real time)
            rsv1, text = recv_msg(raw, timeout=10)
            m = json.loads(text)
        assert rsv1 and m["seq"] == 1 and m.get("delayed", False) is delayed, m
