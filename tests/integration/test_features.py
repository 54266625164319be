"""Integration tests of the market-data features (PROTOCOL.md sections 3-6):
the permission table for get_history / analysis / portfolio_subscribe /
trade / set_options, history, analysis, batching (set_options ->
price_batch), portfolio subscriptions and user events, the paper broker,
and the Redis Streams paths (order stream `tickgate:orders`, shared history
stream `websocket:history:<SYM>`, user events across nodes).

Every test runs the real binary (TICKGATE_BIN) with the simulator off and
publishes its own ticks, so every number is known. Waits are reads with a
deadline; absence is proven with a heartbeat round trip (JsonWS.fence) or,
for the broker's asynchronous work, by what a later message says (a limit
order that fills at the price of the second tick did not fill at the first)."""
import json
import time

import pytest

from conftest import get_metrics, http_json, mint, wait_until
from redis_helpers import (  # noqa: F401  (fixtures are registered by import)
    api, health, rdb, redis_server, rgw, rws)

# Lenient security limits: the role and bounds tests provoke many
# violations from 127.0.0.1 on purpose and must not be closed or blocked.
LENIENT = ("--limits.max_messages_per_minute=100000", "--security.high_violations=65535",
           "--security.critical_violations=1000000", "--limits.max_connections_per_ip=1000",
           "--limits.max_connections_per_user=50")

PAPER_CASH = 1000000.0
ORDERS_STREAM = "tickgate:orders"
ROLES = ("super_admin", "admin", "analyst", "trader", "viewer", "publisher", "anonymous")

# Default role table (PROTOCOL.md section 3): which roles may send each type.
ALLOWED = {
    "get_history": {"viewer", "super_admin"},
    "analysis": {"analyst", "super_admin"},
    "portfolio_subscribe": {"trader", "super_admin"},
    "trade": {"trader", "super_admin"},
    "set_options": set(ROLES) - {"publisher"},
}
SUCCESS = {"get_history": "history", "analysis": "analysis_result", "portfolio_subscribe": "portfolio_subscribed",
           "trade": "trade_accepted", "set_options": "options_set"}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


def start(tickgate, *flags):
    return tickgate(*(LENIENT + flags))


def publish(pub, updates, id_=None):
    r = pub.publish(updates, id=id_)
    assert r.get("type") == "published" and r.get("count") == len(updates), r
    return r


def request_id(ws, msg, timeout=5.0):
    """Sends msg (which carries an id) and returns the first reply with that
    id; messages without it are skipped (e.g. portfolio snapshots)."""
    ws.send(msg)
    m, _ = ws.until(lambda x: x.get("id") == msg["id"], timeout, "reply with id %r" % msg["id"])
    return m


def assert_error(m, code, id_=None):
    assert m.get("type") == "error" and m.get("code") == code, "expected error %s, got %r" % (code, m)
    if id_ is not None:
        assert m.get("id") == id_, "id not echoed: %r" % m
    assert isinstance(m.get("message"), str) and m["message"], m


def assert_quiet(ws, what):
    """A heartbeat round trip: nothing may arrive before its ack."""
    extra = ws.fence()
    assert extra == [], "%s: expected nothing, got %r" % (what, extra)


def portfolio_subscribe(ws, id_="ps"):
    """portfolio_subscribe; returns the snapshot event that follows."""
    ws.send({"type": "portfolio_subscribe", "id": id_})
    r = ws.recv()
    assert r == {"type": "portfolio_subscribed", "id": id_}, r
    snap = ws.recv()
    assert snap.get("type") == "portfolio_update" and snap["event"].get("kind") == "snapshot", snap
    assert "id" not in snap, snap
    return snap["event"]


def trade(ws, id_, **fields):
    msg = {"type": "trade", "id": id_}
    msg.update(fields)
    ws.send(msg)
    return ws.recv()


def market(symbol, side, quantity):
    return {"symbol": symbol, "side": side, "quantity": quantity, "order_type": "market"}


def tick_fields(u):
    return (u["symbol"], u["price"], u["volume"], u["timestamp"])


def check_update_shape(u, symbol):
    assert u.get("type") == "price_update" and u.get("symbol") == symbol, u
    for k in ("price", "bid", "ask", "volume", "change", "change_percent", "timestamp", "seq"):
        assert k in u, "price_update without %s: %r" % (k, u)
    assert "snapshot" not in u, u


def recompute(ticks, now, window_s):
    """The contract's analysis over ticks (publish order) within now-window..now."""
    lo = now - window_s * 1000
    inw = [t for t in ticks if lo <= t["timestamp"] <= now]
    if not inw:
        return {"count": 0, "volume": 0}
    vol = sum(t["volume"] for t in inw)
    return {"open": inw[0]["price"], "high": max(t["price"] for t in inw), "low": min(t["price"] for t in inw),
            "close": inw[-1]["price"], "volume": vol,
            "vwap": sum(t["price"] * t["volume"] for t in inw) / vol, "count": len(inw)}


def assert_analysis(res, want, symbol, window_s):
    assert res.get("type") == "analysis_result", res
    assert res["symbol"] == symbol and res["window_s"] == window_s, res
    assert res["count"] == want["count"], (res, want)
    for k in ("open", "high", "low", "close", "vwap", "volume"):
        if k in want:
            assert res[k] == pytest.approx(want[k], rel=1e-9, abs=1e-6), "%s: %r vs %r" % (k, res, want)


# ---------------------------------------------------------------------------
# 1. permissions of the feature messages, every role
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_feature_permissions_per_role(tickgate, jclients, role):
    gw = start(tickgate)
    token = None if role == "anonymous" else mint("user-" + role, role)
    ws = jclients.open(gw, token=token)
    assert ws.hello["role"] == role
    msgs = {
        "get_history": {"type": "get_history", "symbol": "AAPL", "limit": 10},
        "analysis": {"type": "analysis", "symbol": "AAPL", "window_s": 60},
        "portfolio_subscribe": {"type": "portfolio_subscribe"},
        "trade": dict(market("AAPL", "buy", 1), type="trade"),
        "set_options": {"type": "set_options", "batch_ms": 0},
    }
    got = {}
    for n, (kind, msg) in enumerate(msgs.items()):
        msg = dict(msg, id="%s-%d" % (kind, n))
        got[kind] = request_id(ws, msg)
    for kind, reply in got.items():
        if role in ALLOWED[kind]:
            assert reply.get("type") == SUCCESS[kind], "%s may %s: got %r" % (role, kind, reply)
        else:
            assert_error(reply, "forbidden", id_=reply.get("id"))
            assert reply["id"].startswith(kind), reply


# ---------------------------------------------------------------------------
# 2. get_history
# ---------------------------------------------------------------------------

def test_history_newest_last_with_limit(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    base = now_ms() - 60000
    ticks = [{"symbol": "AAPL", "price": 100 + i * 0.25, "volume": 1000 + i, "timestamp": base + i * 1000}
             for i in range(12)]
    publish(pub, ticks)
    viewer = jclients.open(gw, token=mint("v1", "viewer"))

    r = viewer.request({"type": "get_history", "symbol": "AAPL", "limit": 5, "id": "h5"})
    assert r.get("type") == "history" and r["symbol"] == "AAPL" and r["id"] == "h5", r
    assert [tick_fields(u) for u in r["updates"]] == [tick_fields(dict(t)) for t in ticks[-5:]], r
    for u in r["updates"]:
        check_update_shape(u, "AAPL")
    assert [u["seq"] for u in r["updates"]] == list(range(8, 13)), r

    r = viewer.request({"type": "get_history", "symbol": "AAPL", "limit": 1000, "id": 7})
    assert r["type"] == "history" and r["id"] == 7, r
    assert [tick_fields(u) for u in r["updates"]] == [tick_fields(t) for t in ticks], r
    assert [u["seq"] for u in r["updates"]] == list(range(1, 13)), r

    # limit defaults to 100; a symbol without ticks has an empty history.
    r = viewer.request({"type": "get_history", "symbol": "AAPL"})
    assert len(r["updates"]) == 12 and "id" not in r, r
    r = viewer.request({"type": "get_history", "symbol": "MSFT", "limit": 3})
    assert r == {"type": "history", "symbol": "MSFT", "updates": []}, r


def test_history_invalid_requests(tickgate, jclients):
    gw = start(tickgate)
    viewer = jclients.open(gw, token=mint("v1", "viewer"))
    bad = [{"symbol": "AAPL", "limit": 1001}, {"symbol": "AAPL", "limit": 0}, {"symbol": "AAPL", "limit": -3},
           {"symbol": "AAPL", "limit": "10"}, {"symbol": "AAPL", "limit": 2.5}, {"symbol": "AAPL", "limit": True},
           {"symbol": "AAPL", "limit": None},
           {"symbol": "NOSUCHSYM", "limit": 5}, {"symbol": "aapl", "limit": 5}, {"symbol": 5, "limit": 5},
           {"limit": 5}]
    for n, fields in enumerate(bad):
        msg = dict(fields, type="get_history", id="bad-%d" % n)
        assert_error(viewer.request(msg), "invalid_message", id_="bad-%d" % n)
    # The bounds themselves are fine.
    for lim in (1, 1000):
        r = viewer.request({"type": "get_history", "symbol": "AAPL", "limit": lim, "id": "ok"})
        assert r["type"] == "history" and r["id"] == "ok", r


def test_missing_volume_keeps_the_last_volume(tickgate, jclients):
    """docs/protocol.md: a tick without volume keeps the last volume (which
    then counts again in analysis)."""
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "AMD", "price": 10, "volume": 500}, {"symbol": "AMD", "price": 11}])
    v = jclients.open(gw, token=mint("v", "viewer"))
    r = v.request({"type": "get_history", "symbol": "AMD"})
    assert [(u["price"], u["volume"]) for u in r["updates"]] == [(10, 500), (11, 500)], r


def test_history_size_keeps_only_the_last(tickgate, jclients):
    gw = start(tickgate, "--feed.history_size=5")
    pub = jclients.publisher(gw)
    ticks = [{"symbol": "MSFT", "price": 300 + i, "volume": 10 * (i + 1), "timestamp": now_ms() - 10000 + i}
             for i in range(8)]
    publish(pub, ticks[:3])
    publish(pub, ticks[3:])
    viewer = jclients.open(gw, token=mint("v1", "viewer"))
    r = viewer.request({"type": "get_history", "symbol": "MSFT", "limit": 1000})
    assert [tick_fields(u) for u in r["updates"]] == [tick_fields(t) for t in ticks[-5:]], r
    assert [u["seq"] for u in r["updates"]] == [4, 5, 6, 7, 8], r
    r = viewer.request({"type": "get_history", "symbol": "MSFT", "limit": 2})
    assert [u["seq"] for u in r["updates"]] == [7, 8], r


# ---------------------------------------------------------------------------
# 3. analysis
# ---------------------------------------------------------------------------

def test_analysis_matches_recomputation(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    t0 = now_ms()
    # (age in seconds, price, volume): ages far from the window edges (60 s,
    # 600 s) so the server's clock at the query cannot change the result.
    plan = [(7200, 150.0, 500), (900, 151.5, 700), (300, 149.25, 300), (120, 152.0, 1000), (45, 153.5, 250),
            (30, 148.75, 4000), (20, 150.125, 1200), (10, 155.0, 50), (2, 151.0, 800), (-3600, 500.0, 999999)]
    ticks = [{"symbol": "NVDA", "price": p, "volume": v, "timestamp": t0 - age * 1000} for age, p, v in plan]
    publish(pub, ticks)
    analyst = jclients.open(gw, token=mint("a1", "analyst"))
    for window in (60, 600, 3600, 5):
        before = now_ms()
        res = analyst.request({"type": "analysis", "symbol": "NVDA", "window_s": window, "id": "w%d" % window})
        after = now_ms()
        want = recompute(ticks, before, window)
        assert want == recompute(ticks, after, window), "the plan sits on a window edge"
        assert res.get("id") == "w%d" % window, res
        assert_analysis(res, want, "NVDA", window)
    assert recompute(ticks, t0, 60)["count"] == 5  # the plan really mixes inside and outside

    # No ticks in the window: count 0, volume 0.
    res = analyst.request({"type": "analysis", "symbol": "AMD", "window_s": 60})
    assert res["type"] == "analysis_result" and res["count"] == 0 and res["volume"] == 0, res


def test_analysis_invalid_requests(tickgate, jclients):
    gw = start(tickgate)
    analyst = jclients.open(gw, token=mint("a1", "analyst"))
    bad = [{"symbol": "AAPL", "window_s": 3601}, {"symbol": "AAPL", "window_s": 0},
           {"symbol": "AAPL", "window_s": -60}, {"symbol": "AAPL", "window_s": "60"},
           {"symbol": "AAPL", "window_s": 1.5}, {"symbol": "NOSUCHSYM", "window_s": 60}, {"window_s": 60}]
    for n, fields in enumerate(bad):
        msg = dict(fields, type="analysis", id=n)
        assert_error(analyst.request(msg), "invalid_message", id_=n)
    r = analyst.request({"type": "analysis", "symbol": "AAPL", "window_s": 3600})
    assert r["type"] == "analysis_result" and r["window_s"] == 3600, r


# ---------------------------------------------------------------------------
# 4. batching
# ---------------------------------------------------------------------------

def read_batches(ws, want, timeout=5.0):
    """Reads price_batch frames until `want` updates arrived; anything else fails."""
    got, frames = [], 0
    deadline = time.monotonic() + timeout
    while len(got) < want:
        m = ws.recv(max(0.01, deadline - time.monotonic()))
        assert m.get("type") == "price_batch", "expected only price_batch frames, got %r" % m
        assert set(m) == {"type", "updates"} and m["updates"], m
        got += m["updates"]
        frames += 1
    assert len(got) == want, "more updates than published: %d" % len(got)
    return got, frames


def test_batch_delivers_every_tick_in_order(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    sub = jclients.open(gw, token=mint("v1", "viewer"))
    sub.subscribe(["AAPL", "MSFT"])
    r = sub.request({"type": "set_options", "batch_ms": 100, "id": "b"})
    assert r == {"type": "options_set", "batch_ms": 100, "id": "b"}, r

    t0 = now_ms()
    ticks = [{"symbol": "AAPL" if i % 3 else "MSFT", "price": 200 + i / 8, "volume": i + 1, "timestamp": t0 + i}
             for i in range(60)]
    publish(pub, ticks)
    got, frames = read_batches(sub, len(ticks))
    assert [tick_fields(u) for u in got] == [tick_fields(t) for t in ticks]
    for sym in ("AAPL", "MSFT"):
        seqs = [u["seq"] for u in got if u["symbol"] == sym]
        assert seqs == list(range(1, len(seqs) + 1)), (sym, seqs)
    for u in got:
        check_update_shape(u, u["symbol"])
    assert_quiet(sub, "after the batch")

    # A second publish is batched again, never as single updates.
    more = [{"symbol": "AAPL", "price": 250 + i, "volume": 1} for i in range(5)]
    publish(pub, more)
    got2, _ = read_batches(sub, len(more))
    assert [u["price"] for u in got2] == [t["price"] for t in more]


def test_batch_switch_sends_waiting_batch_first(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    sub = jclients.open(gw, token=mint("v1", "viewer"))
    sub.subscribe(["AAPL"])
    assert sub.request({"type": "set_options", "batch_ms": 1000, "id": 1})["batch_ms"] == 1000

    # 1000 -> 200 while three ticks wait: the batch comes before options_set.
    publish(pub, [{"symbol": "AAPL", "price": 10 + i, "volume": 1} for i in range(3)])
    assert_quiet(sub, "a batch due only after 1 s")
    sub.send({"type": "set_options", "batch_ms": 200, "id": 2})
    m = sub.recv()
    assert m.get("type") == "price_batch" and [u["price"] for u in m["updates"]] == [10, 11, 12], m
    assert sub.recv() == {"type": "options_set", "batch_ms": 200, "id": 2}

    # 200 -> 0 while two ticks wait (200 ms is long against a fence).
    assert sub.request({"type": "set_options", "batch_ms": 1000, "id": 3})["batch_ms"] == 1000
    publish(pub, [{"symbol": "AAPL", "price": 20 + i, "volume": 1} for i in range(2)])
    assert_quiet(sub, "a batch due only after 1 s")
    sub.send({"type": "set_options", "batch_ms": 0, "id": 4})
    m = sub.recv()
    assert m.get("type") == "price_batch" and [u["price"] for u in m["updates"]] == [20, 21], m
    assert sub.recv() == {"type": "options_set", "batch_ms": 0, "id": 4}

    # batch_ms 0: single price_update frames again, one per tick.
    publish(pub, [{"symbol": "AAPL", "price": 30 + i, "volume": 1} for i in range(3)])
    for i in range(3):
        m = sub.recv()
        assert m.get("type") == "price_update" and m["price"] == 30 + i, m
    assert_quiet(sub, "after three single updates")

    # Switching with nothing waiting: just the confirmation.
    assert sub.request({"type": "set_options", "batch_ms": 0}) == {"type": "options_set", "batch_ms": 0}


def test_batch_options_bounds(tickgate, jclients):
    gw = start(tickgate)
    anon = jclients.open(gw)
    for n, v in enumerate((1001, -1, "100", 1.5, None, True, [100])):
        assert_error(anon.request({"type": "set_options", "batch_ms": v, "id": n}), "invalid_message", id_=n)
    assert_error(anon.request({"type": "set_options", "id": "missing"}), "invalid_message", id_="missing")
    for v in (0, 1, 1000):
        assert anon.request({"type": "set_options", "batch_ms": v}) == {"type": "options_set", "batch_ms": v}


def test_batch_of_a_client_not_reading_conflates_in_seq_order(tickgate, jclients):
    """Issue 13 item 6, sibling: a batch counted its ticks in 16 bits and
    stopped at 32,768, dropping every later tick (the newest included)
    while its bytes were still under limits.max_outbound_bytes; and at the
    byte bound the newest tick replaced the symbol's *oldest* waiting one,
    so a price_batch went back in seq. A batching client that does not
    read: once its socket and queue are full the batch only grows, past
    32,768 ticks (6 MiB of them), then conflates; reading again, the client
    sees seqs strictly increasing, ending with the newest tick."""
    cap = 6 << 20
    gw = start(tickgate, "--limits.max_outbound_bytes=%d" % cap)
    slow = jclients.small(gw, 4096)
    slow.subscribe(["AAPL"])
    assert slow.request({"type": "set_options", "batch_ms": 1})["type"] == "options_set"
    pub = jclients.publisher(gw)
    sent = 0

    def burst(n=1000):
        nonlocal sent
        publish(pub, [{"symbol": "AAPL", "price": 100 + (sent + i) / 100, "volume": sent + i}
                      for i in range(1, n + 1)])
        sent += n

    # Until the batch passes the byte cap (bounded: a few MB sit in socket
    # buffers, 6 MiB in the queue, then 6 MiB of batch at ~150 bytes a tick).
    while get_metrics(gw)["tickgate_slow_consumer_conflated_total"] == 0:
        assert sent < 400000, "no conflation after %d ticks to a batching client that does not read" % sent
        burst()
    for _ in range(3):
        burst()
    got = []
    while not got or got[-1]["seq"] < sent:
        m = slow.recv(timeout=30)
        assert m.get("type") == "price_batch", m
        assert all(u["symbol"] == "AAPL" for u in m["updates"]), m["updates"][:3]
        seqs = [u["seq"] for u in got[-1:] + m["updates"]]
        back = [(a, b) for a, b in zip(seqs, seqs[1:]) if a >= b]
        assert not back, "seq went back in a price_batch: %s" % back[:5]
        got += m["updates"]
    assert got[-1]["volume"] == sent and len(got) < sent, (got[-1], len(got), sent)
    assert_quiet(slow, "after the newest tick")


def test_one_message_larger_than_the_reply_bound_is_delivered(tickgate, jclients):
    """Issue 13 item 15, a cross-key sibling: a client whose queued replies
    pass 2 x limits.max_outbound_bytes is taken for one that does not read
    and closed, but the check counted the message being queued too, so a
    reader asking for a 1000-tick history (~150 KB) with the smallest cap
    (4096), or batching 30 symbols, was closed at once. What is already
    queued is what shows a client not reading."""
    gw = start(tickgate, "--limits.max_outbound_bytes=4096")
    pub = jclients.publisher(gw)
    syms = ["AAPL", "MSFT", "GOOGL", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "MA", "UNH", "JNJ", "XOM",
            "WMT", "PG", "HD", "CVX", "LLY", "ABBV", "MRK", "KO", "PEP", "AVGO", "COST", "ADBE", "CRM", "NFLX",
            "AMD", "INTC"]
    for k in range(2):
        publish(pub, [{"symbol": "AAPL", "price": 100 + (500 * k + i) / 100, "volume": i} for i in range(500)])
    viewer = jclients.open(gw, token=mint("v", "viewer"))
    r = request_id(viewer, {"type": "get_history", "symbol": "AAPL", "limit": 1000, "id": "h"})
    assert r["type"] == "history" and len(r["updates"]) == 1000 and len(json.dumps(r)) > 2 * 4096, r["type"]
    batcher = jclients.open(gw, token=mint("t", "trader"))
    batcher.subscribe(syms)
    assert batcher.request({"type": "set_options", "batch_ms": 200})["type"] == "options_set"
    publish(pub, [{"symbol": s, "price": 50} for s in syms])
    got, _ = read_batches(batcher, len(syms))
    assert sorted(u["symbol"] for u in got) == sorted(syms)
    assert_quiet(batcher, "after the batch")


# ---------------------------------------------------------------------------
# 5. portfolio subscriptions and user events
# ---------------------------------------------------------------------------

def post_publish(gw, token, body):
    return http_json(gw, "POST", "/api/publish", {"Authorization": "Bearer " + token,
                                                  "Content-Type": "application/json"}, json.dumps(body).encode())


def test_user_events_reach_only_that_users_portfolio_subscribers(tickgate, jclients):
    gw = start(tickgate)
    alice = jclients.open(gw, token=mint("alice", "trader"))
    alice2 = jclients.open(gw, token=mint("alice", "trader"))  # never portfolio_subscribes
    bob = jclients.open(gw, token=mint("bob", "trader"))
    assert portfolio_subscribe(alice) == {"cash": PAPER_CASH, "positions": [], "kind": "snapshot"}
    assert portfolio_subscribe(bob) == {"cash": PAPER_CASH, "positions": [], "kind": "snapshot"}
    assert_quiet(alice2, "alice2 before the event")

    r = post_publish(gw, mint("pub1", "publisher"), {"user_events": [{"user_id": "alice", "event": {"x": 1}}]})
    assert r.status == 200 and r.json() == {"published": 0, "user_events": 1}, r

    assert alice.recv() == {"type": "portfolio_update", "event": {"x": 1}}
    assert_quiet(bob, "bob (another user)")
    assert_quiet(alice2, "alice's connection without portfolio_subscribe")
    assert_quiet(alice, "alice after her one event")

    # Ticks and user events in one request; a user with no connection is fine.
    r = post_publish(gw, mint("pub1", "publisher"),
                     {"updates": [{"symbol": "AAPL", "price": 190}],
                      "user_events": [{"user_id": "bob", "event": {"y": [1, 2]}},
                                      {"user_id": "nobody", "event": {}}]})
    assert r.status == 200 and r.json() == {"published": 1, "user_events": 2}, r
    assert bob.recv() == {"type": "portfolio_update", "event": {"y": [1, 2]}}
    assert_quiet(alice, "alice (event for bob)")

    # Only publishing roles may post user events.
    r = post_publish(gw, mint("carol", "trader"), {"user_events": [{"user_id": "alice", "event": {"x": 2}}]})
    assert r.status == 403, r
    assert_quiet(alice, "alice after a refused post")


def test_super_admin_portfolio_snapshot(tickgate, jclients):
    gw = start(tickgate)
    sa = jclients.open(gw, token=mint("root", "super_admin"))
    assert portfolio_subscribe(sa, "p1") == {"cash": PAPER_CASH, "positions": [], "kind": "snapshot"}


# ---------------------------------------------------------------------------
# 6. paper trading
# ---------------------------------------------------------------------------

def test_market_orders_fill_at_last_price(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "AAPL", "price": 201.5, "volume": 1}, {"symbol": "AAPL", "price": 200.25, "volume": 1}])
    alice = jclients.open(gw, token=mint("alice", "trader"))
    portfolio_subscribe(alice)

    t_before = now_ms()
    acc = trade(alice, "o1", **market("AAPL", "buy", 10))
    assert acc.get("type") == "trade_accepted" and acc.get("id") == "o1", acc
    oid = acc["order_id"]
    assert isinstance(oid, str) and oid, acc
    filled = alice.recv()
    assert filled.get("type") == "trade_filled", filled
    assert {k: filled[k] for k in ("order_id", "symbol", "side", "quantity", "price")} == \
        {"order_id": oid, "symbol": "AAPL", "side": "buy", "quantity": 10, "price": 200.25}, filled
    assert t_before - 1000 <= filled["timestamp"] <= now_ms() + 1000, filled
    upd = alice.recv()
    assert upd.get("type") == "portfolio_update", upd
    ev = upd["event"]
    assert ev["cash"] == pytest.approx(PAPER_CASH - 10 * 200.25), ev
    assert ev["positions"] == [{"symbol": "AAPL", "quantity": 10, "avg_price": 200.25}], ev
    assert_quiet(alice, "after the fill")

    # A second buy at a new price averages; a sell keeps the average.
    publish(pub, [{"symbol": "AAPL", "price": 210, "volume": 1}])
    acc2 = trade(alice, 2, **market("AAPL", "buy", 10))
    assert acc2["type"] == "trade_accepted" and acc2["id"] == 2 and acc2["order_id"] != oid, acc2
    assert alice.recv()["price"] == 210
    ev = alice.recv()["event"]
    assert ev["positions"] == [{"symbol": "AAPL", "quantity": 20, "avg_price": pytest.approx(205.125)}], ev
    publish(pub, [{"symbol": "AAPL", "price": 220, "volume": 1}])
    assert trade(alice, 3, **market("AAPL", "sell", 5))["type"] == "trade_accepted"
    f = alice.recv()
    assert f["type"] == "trade_filled" and f["side"] == "sell" and f["price"] == 220 and f["quantity"] == 5, f
    ev = alice.recv()["event"]
    assert ev["cash"] == pytest.approx(PAPER_CASH - 2002.5 - 2100 + 1100), ev
    assert ev["positions"] == [{"symbol": "AAPL", "quantity": 15, "avg_price": pytest.approx(205.125)}], ev

    # A fresh portfolio_subscribe shows the same state.
    other = jclients.open(gw, token=mint("alice", "trader"))
    other.send({"type": "portfolio_subscribe", "id": "again"})
    assert other.recv() == {"type": "portfolio_subscribed", "id": "again"}
    snap = other.recv()["event"]
    assert snap["kind"] == "snapshot" and snap["cash"] == pytest.approx(ev["cash"]), snap
    assert snap["positions"] == ev["positions"], snap


def test_limit_buy_rests_until_a_tick_crosses(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "MSFT", "price": 400, "volume": 1}])
    bob = jclients.open(gw, token=mint("bob", "trader"))
    portfolio_subscribe(bob)
    acc = trade(bob, "L1", symbol="MSFT", side="buy", quantity=3, order_type="limit", limit_price=390)
    assert acc["type"] == "trade_accepted" and acc["id"] == "L1", acc
    assert_quiet(bob, "a limit buy below the market")

    # 395 does not cross 390; 389.5 does: the fill is at 389.5, which also
    # proves there was no fill at 395 (the broker works ticks in order).
    publish(pub, [{"symbol": "MSFT", "price": 395, "volume": 1}])
    publish(pub, [{"symbol": "MSFT", "price": 389.5, "volume": 1}, {"symbol": "MSFT", "price": 380, "volume": 1}])
    f = bob.recv()
    assert f["type"] == "trade_filled" and f["order_id"] == acc["order_id"], f
    assert (f["symbol"], f["side"], f["quantity"], f["price"]) == ("MSFT", "buy", 3, 389.5), f
    ev = bob.recv()["event"]
    assert ev["cash"] == pytest.approx(PAPER_CASH - 3 * 389.5), ev
    assert ev["positions"] == [{"symbol": "MSFT", "quantity": 3, "avg_price": 389.5}], ev
    assert_quiet(bob, "one fill only")

    # A marketable limit order fills at once at the last price; a limit sell
    # above the market rests until a tick reaches it.
    acc = trade(bob, "L2", symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=385)
    assert acc["type"] == "trade_accepted", acc
    f = bob.recv()
    assert f["type"] == "trade_filled" and f["price"] == 380, f
    bob.recv()
    acc = trade(bob, "L3", symbol="MSFT", side="sell", quantity=4, order_type="limit", limit_price=410)
    assert acc["type"] == "trade_accepted", acc
    assert_quiet(bob, "a limit sell above the market")
    publish(pub, [{"symbol": "MSFT", "price": 409.99, "volume": 1}, {"symbol": "MSFT", "price": 412, "volume": 1}])
    f = bob.recv()
    assert (f["type"], f["side"], f["quantity"], f["price"]) == ("trade_filled", "sell", 4, 412), f
    ev = bob.recv()["event"]
    assert ev["positions"] == [], ev
    assert ev["cash"] == pytest.approx(PAPER_CASH - 3 * 389.5 - 380 + 4 * 412), ev


def test_open_limit_orders_are_capped_per_user(tickgate, jclients):
    """Issue 13 item 8: resting orders per user were unbounded (36,000 in
    1.4 s, each walked by every tick). trade.max_open_orders (default 100)
    caps the limit orders a user holds; market orders and other users are
    not affected, and a fill frees a place."""
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "MSFT", "price": 400, "volume": 1}])
    alice = jclients.open(gw, token=mint("alice", "trader"))
    for i in range(100):
        r = trade(alice, i, symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=300 + i / 100)
        assert r["type"] == "trade_accepted" and r["id"] == i, r
    r = trade(alice, "over", symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=350)
    assert r == {"type": "trade_rejected", "reason": "too_many_open_orders", "id": "over"}, r
    # Her other connection shares the count: it is the user's, not the socket's.
    alice2 = jclients.open(gw, token=mint("alice", "trader"))
    r = trade(alice2, "over2", symbol="MSFT", side="sell", quantity=1, order_type="limit", limit_price=500)
    assert r == {"type": "trade_rejected", "reason": "too_many_open_orders", "id": "over2"}, r
    # A market order does not rest, so it is not capped; another user is not either.
    assert trade(alice, "m", **market("MSFT", "buy", 1))["type"] == "trade_accepted"
    assert alice.recv()["type"] == "trade_filled"
    bob = jclients.open(gw, token=mint("bob", "trader"))
    r = trade(bob, "b", symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=300)
    assert r["type"] == "trade_accepted", r
    # A tick at 300.98 fills her two best (300.99, 300.98) and nothing else;
    # each fill frees a place, so two more orders rest and the third is refused.
    publish(pub, [{"symbol": "MSFT", "price": 300.98, "volume": 1}])
    fills = [alice.recv() for _ in range(2)]
    assert [f["type"] for f in fills] == ["trade_filled"] * 2, fills
    assert_quiet(alice, "only the crossed orders fill")
    for n in range(2):
        r = trade(alice, "again%d" % n, symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=200)
        assert r["type"] == "trade_accepted", r
    r = trade(alice, "full", symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=200)
    assert r == {"type": "trade_rejected", "reason": "too_many_open_orders", "id": "full"}, r


def test_max_open_orders_option_and_fills_best_limit_first(tickgate, jclients):
    """trade.max_open_orders is configurable; a tick fills the orders it
    crosses best limit first, the oldest first among equal limits (the
    resting list used to fill the newest first)."""
    gw = start(tickgate, "--trade.max_open_orders=4")
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "MSFT", "price": 400, "volume": 1}])
    bob = jclients.open(gw, token=mint("bob", "trader"))
    ids = {}
    for name, limit in (("a", 390), ("b", 392), ("c", 391), ("d", 392)):
        r = trade(bob, name, symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=limit)
        assert r["type"] == "trade_accepted", r
        ids[r["order_id"]] = name
    r = trade(bob, "e", symbol="MSFT", side="buy", quantity=1, order_type="limit", limit_price=380)
    assert r == {"type": "trade_rejected", "reason": "too_many_open_orders", "id": "e"}, r
    publish(pub, [{"symbol": "MSFT", "price": 389, "volume": 1}])
    got = []
    for _ in range(4):
        f = bob.recv()
        assert f["type"] == "trade_filled" and f["price"] == 389, f
        got.append(ids[f["order_id"]])
    assert got == ["b", "d", "c", "a"], got
    assert_quiet(bob, "four fills")


def test_trade_rejections(tickgate, jclients):
    gw = start(tickgate)
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "AAPL", "price": 100, "volume": 1}])
    alice = jclients.open(gw, token=mint("alice", "trader"))
    portfolio_subscribe(alice)

    r = trade(alice, "s1", **market("AAPL", "sell", 1))
    assert r == {"type": "trade_rejected", "reason": "insufficient_position", "id": "s1"}, r
    r = trade(alice, "b1", **market("AAPL", "buy", 10001))  # 1,000,100 > 1,000,000
    assert r == {"type": "trade_rejected", "reason": "insufficient_cash", "id": "b1"}, r
    r = trade(alice, "b2", symbol="AAPL", side="buy", quantity=20000, order_type="limit", limit_price=50.01)
    assert r == {"type": "trade_rejected", "reason": "insufficient_cash", "id": "b2"}, r
    assert_quiet(alice, "rejected orders change nothing")

    # Exactly the cash is affordable; then selling more than held is not.
    assert trade(alice, "b3", **market("AAPL", "buy", 10000))["type"] == "trade_accepted"
    assert alice.recv()["type"] == "trade_filled"
    ev = alice.recv()["event"]
    assert ev["cash"] == pytest.approx(0, abs=1e-6) and ev["positions"][0]["quantity"] == 10000, ev
    r = trade(alice, "s2", **market("AAPL", "sell", 10000.5))
    assert r == {"type": "trade_rejected", "reason": "insufficient_position", "id": "s2"}, r
    r = trade(alice, "b4", **market("AAPL", "buy", 1))
    assert r == {"type": "trade_rejected", "reason": "insufficient_cash", "id": "b4"}, r


def test_trade_invalid_fields(tickgate, jclients):
    gw = start(tickgate)
    alice = jclients.open(gw, token=mint("alice", "trader"))
    good = market("AAPL", "buy", 1)
    bad = [dict(good, side="hold"), dict(good, side="BUY"), dict(good, side=None), {k: v for k, v in good.items()
                                                                                      if k != "side"},
           dict(good, order_type="stop"), dict(good, order_type=1), {k: v for k, v in good.items() if k != "order_type"},
           dict(good, quantity=0), dict(good, quantity=-5), dict(good, quantity="10"), dict(good, quantity=None),
           dict(good, quantity=1e-300), dict(good, quantity=1e9 + 1),  # issue 13 item 15: a cost that rounds to 0
           dict(good, order_type="limit", limit_price=1e-300), dict(good, order_type="limit", limit_price=2e12),
           {k: v for k, v in good.items() if k != "quantity"},
           dict(good, order_type="limit"), dict(good, order_type="limit", limit_price=0),
           dict(good, order_type="limit", limit_price=-1), dict(good, order_type="limit", limit_price="100"),
           dict(good, symbol="NOSUCHSYM"), dict(good, symbol="bad symbol"), {k: v for k, v in good.items()
                                                                              if k != "symbol"}]
    for n, fields in enumerate(bad):
        msg = dict(fields, type="trade", id="t%d" % n)
        r = alice.request(msg)
        assert_error(r, "invalid_message", id_="t%d" % n)
    assert_quiet(alice, "after invalid trades")


def test_paper_cash_option(tickgate, jclients):
    gw = start(tickgate, "--trade.paper_cash=500")
    pub = jclients.publisher(gw)
    publish(pub, [{"symbol": "AAPL", "price": 200, "volume": 1}])
    alice = jclients.open(gw, token=mint("alice", "trader"))
    assert portfolio_subscribe(alice) == {"cash": 500, "positions": [], "kind": "snapshot"}
    r = trade(alice, 1, **market("AAPL", "buy", 10))
    assert r == {"type": "trade_rejected", "reason": "insufficient_cash", "id": 1}, r
    assert trade(alice, 2, **market("AAPL", "buy", 2))["type"] == "trade_accepted"
    assert alice.recv()["type"] == "trade_filled"
    ev = alice.recv()["event"]
    assert ev["cash"] == pytest.approx(100) and ev["positions"] == [
        {"symbol": "AAPL", "quantity": 2, "avg_price": 200}], ev


def test_paper_false_accepts_without_filling(tickgate, jclients):
    gw = start(tickgate, "--trade.paper=false")
    alice = jclients.open(gw, token=mint("alice", "trader"))
    alice.send({"type": "portfolio_subscribe", "id": "p"})
    assert alice.recv() == {"type": "portfolio_subscribed", "id": "p"}
    acc = trade(alice, "o", **market("AAPL", "buy", 1))
    assert acc["type"] == "trade_accepted" and acc["id"] == "o" and acc["order_id"], acc
    assert_quiet(alice, "no paper broker: no fill, no portfolio")


# ---------------------------------------------------------------------------
# 7. Redis Streams paths
# ---------------------------------------------------------------------------

def orders_by_id(rdb):
    return {f["order_id"]: f for _id, f in rdb.xrange(ORDERS_STREAM)}


def listen(ws, rdb, symbol, nodes=1):
    """Subscribes ws to symbol and waits until `nodes` nodes listen to its
    Redis channel (the node subscribes the channel asynchronously; see
    test_redis_ticks_right_after_subscription_confirmed for that race)."""
    ws.subscribe([symbol])
    ch = "websocket:tick:" + symbol
    wait_until(lambda: dict(rdb.pubsub_numsub(ch))[ch] == nodes, 5, "%d node(s) on %s" % (nodes, ch))


def wait_seq(ws, symbol, seq, timeout=5.0):
    """Reads until the live price_update of symbol with seq arrives."""
    m, _ = ws.until(lambda x: x.get("type") == "price_update" and x.get("symbol") == symbol and x.get("seq") == seq,
                    timeout, "%s seq %d" % (symbol, seq))
    return m


def test_redis_orders_recorded_before_acknowledgement(redis_server, rdb, rgw, rws):
    gw = rgw(redis_server)
    pub = rws.open(gw, token=mint("pub1", "publisher"))
    watcher = rws.open(gw, token=mint("w", "viewer"))
    listen(watcher, rdb, "AAPL")
    publish(pub, [{"symbol": "AAPL", "price": 123.5, "volume": 1}])
    wait_seq(watcher, "AAPL", 1)  # through Redis: the node now knows the price
    alice = rws.open(gw, token=mint("alice", "trader"))
    portfolio_subscribe(alice)

    alice.send(dict(market("AAPL", "buy", 4), type="trade", id="m"))
    acc = alice.recv()
    assert acc["type"] == "trade_accepted" and acc["id"] == "m", acc
    rec = orders_by_id(rdb).get(acc["order_id"])  # read at once: it must already be there
    assert rec is not None, "trade_accepted before the order was in %s" % ORDERS_STREAM
    assert set(rec) == {"order_id", "user_id", "symbol", "side", "quantity", "order_type", "limit_price", "ts"}, rec
    assert (rec["user_id"], rec["symbol"], rec["side"], rec["order_type"]) == ("alice", "AAPL", "buy", "market"), rec
    assert float(rec["quantity"]) == 4 and float(rec["limit_price"]) == 0, rec
    assert abs(int(rec["ts"]) - now_ms()) < 60000, rec
    f = alice.recv()
    assert f["type"] == "trade_filled" and f["price"] == 123.5, f
    alice.recv()

    alice.send({"type": "trade", "id": "l", "symbol": "MSFT", "side": "buy", "quantity": 2.5,
                "order_type": "limit", "limit_price": 1.25})
    acc = alice.recv()
    assert acc["type"] == "trade_accepted", acc
    rec = orders_by_id(rdb)[acc["order_id"]]
    assert (rec["symbol"], rec["order_type"], float(rec["quantity"]), float(rec["limit_price"])) == \
        ("MSFT", "limit", 2.5, 1.25), rec

    # Rejected orders are not recorded.
    n = rdb.xlen(ORDERS_STREAM)
    r = trade(alice, "s", **market("NVDA", "sell", 1))
    assert r["type"] == "trade_rejected" and r["reason"] == "insufficient_position", r
    assert rdb.xlen(ORDERS_STREAM) == n


def test_redis_down_rejects_orders(redis_server, rgw, rws):
    gw = rgw(redis_server)
    alice = rws.open(gw, token=mint("alice", "trader"))
    redis_server.kill()
    wait_until(lambda: health(gw)["checks"]["redis"] == "down", 10, "checks.redis == 'down'")
    r = trade(alice, "x", **market("AAPL", "buy", 1))
    assert r == {"type": "trade_rejected", "reason": "order_store_unavailable", "id": "x"}, r
    assert_quiet(alice, "no fill for a rejected order")


def test_redis_paper_false_records_but_does_not_fill(redis_server, rdb, rgw, rws):
    gw = rgw(redis_server, "--trade.paper=false")
    alice = rws.open(gw, token=mint("alice", "trader"))
    for n, order in enumerate([market("AAPL", "buy", 7),
                               {"symbol": "TSLA", "side": "sell", "quantity": 3, "order_type": "limit",
                                "limit_price": 999.5}]):
        acc = trade(alice, n, **order)
        assert acc["type"] == "trade_accepted" and acc["id"] == n, acc
        rec = orders_by_id(rdb)[acc["order_id"]]
        assert (rec["symbol"], rec["side"], rec["order_type"], float(rec["quantity"])) == \
            (order["symbol"], order["side"], order["order_type"], order["quantity"]), rec
    assert_quiet(alice, "paper broker off: no fills")


def test_redis_history_shared_between_nodes(redis_server, rdb, rgw, rws):
    n1 = rgw(redis_server)
    n2 = rgw(redis_server)
    pub = rws.open(n1, token=mint("pub1", "publisher"))
    watch = rws.open(n1, token=mint("w", "viewer"))
    listen(watch, rdb, "GOOGL")
    t0 = now_ms() - 5000
    ticks = [{"symbol": "GOOGL", "price": 170 + i * 0.5, "volume": 100 * (i + 1), "timestamp": t0 + i * 100}
             for i in range(6)]
    publish(pub, ticks)
    wait_seq(watch, "GOOGL", 6)  # the publish script ran for all six

    v2 = rws.open(n2, token=mint("v2", "viewer"))
    r = v2.request({"type": "get_history", "symbol": "GOOGL", "limit": 4, "id": "n2"})
    assert r["type"] == "history" and r["id"] == "n2", r
    assert [tick_fields(u) for u in r["updates"]] == [tick_fields(t) for t in ticks[-4:]], r
    assert [u["seq"] for u in r["updates"]] == [3, 4, 5, 6], r
    assert rdb.xlen("websocket:history:GOOGL") == 6
    # Only node 1 listens to the symbol's channel: node 2 answered from the stream.
    assert dict(rdb.pubsub_numsub("websocket:tick:GOOGL")) == {"websocket:tick:GOOGL": 1}

    # Analysis on node 2 reads the same shared stream.
    a2 = rws.open(n2, token=mint("a2", "analyst"))
    res = a2.request({"type": "analysis", "symbol": "GOOGL", "window_s": 60})
    assert_analysis(res, recompute(ticks, now_ms(), 60), "GOOGL", 60)


def test_redis_user_event_reaches_other_node(redis_server, rdb, rgw, rws):
    n1 = rgw(redis_server)
    n2 = rgw(redis_server)
    ch = "websocket:control"
    wait_until(lambda: dict(rdb.pubsub_numsub(ch))[ch] == 2, 5, "both nodes on the control channel")
    alice = rws.open(n2, token=mint("alice", "trader"))
    bob = rws.open(n2, token=mint("bob", "trader"))
    portfolio_subscribe(alice)
    portfolio_subscribe(bob)
    r = api(n1, "POST", "/api/publish", mint("pub1", "publisher"),
            {"user_events": [{"user_id": "alice", "event": {"x": 1}}]})
    assert r.status == 200 and r.json() == {"published": 0, "user_events": 1}, r
    assert alice.recv() == {"type": "portfolio_update", "event": {"x": 1}}
    assert_quiet(bob, "bob on node 2")
    assert_quiet(alice, "exactly one copy for alice")


# ---------------------------------------------------------------------------
# 8. Redis-mode contract checks that the gateway failed when written
#    (see the docstrings; each names the behaviour the contract asks for)
# ---------------------------------------------------------------------------

def test_redis_history_size_bounds_shared_history(redis_server, rdb, rgw, rws):
    """--feed.history_size also bounds the shared stream's answer: a node
    keeps (and returns) only the last history_size ticks."""
    gw = rgw(redis_server, "--feed.history_size=5")
    pub = rws.open(gw, token=mint("pub1", "publisher"))
    watch = rws.open(gw, token=mint("w", "viewer"))
    listen(watch, rdb, "AMZN")
    ticks = [{"symbol": "AMZN", "price": 100 + i, "volume": 1} for i in range(12)]
    publish(pub, ticks)
    wait_seq(watch, "AMZN", 12)
    v = rws.open(gw, token=mint("v", "viewer"))
    r = v.request({"type": "get_history", "symbol": "AMZN", "limit": 1000})
    assert [u["seq"] for u in r["updates"]] == [8, 9, 10, 11, 12], r


def test_redis_market_order_uses_last_published_price(redis_server, rgw, rws):
    """With Redis on, a node with no subscribers of a symbol still fills a
    market order at the last price published (contract: "fills market orders
    at the last price"), not at the symbol's start price."""
    gw = rgw(redis_server)
    pub = rws.open(gw, token=mint("pub1", "publisher"))
    probe = rws.open(gw, token=mint("v", "viewer"))
    publish(pub, [{"symbol": "AAPL", "price": 77.25, "volume": 1}])
    # get_history reads the shared stream: once it holds the tick, the
    # publish script has run.
    wait_until(lambda: probe.request({"type": "get_history", "symbol": "AAPL", "limit": 1})["updates"],
               5, "the tick in the shared history")
    alice = rws.open(gw, token=mint("alice", "trader"))
    acc = trade(alice, 1, **market("AAPL", "buy", 1))
    assert acc["type"] == "trade_accepted", acc
    f = alice.recv()
    assert f["type"] == "trade_filled" and f["price"] == 77.25, "filled at a stale price: %r" % f


RACE_SYMBOLS = ("AMD INTC ORCL CSCO IBM QCOM TXN INTU AMAT MU NOW BAC WFC GS MS C AXP BLK SCHW PYPL SQ DIS CMCSA T VZ "
                "TMUS NKE MCD SBUX BKNG ABNB UBER LYFT BA CAT DE GE HON LMT RTX UPS FDX PFE TMO ABT DHR BMY AMGN "
                "GILD CVS MDT SPY QQQ DIA IWM GLD SLV TLT VTI SHOP").split()


def test_redis_ticks_right_after_subscription_confirmed(redis_server, rdb, rgw, rws):
    """A client that has its subscription_confirmed and snapshot must see
    every later tick of the symbol (PROTOCOL.md section 5: every seq in
    order), also when it is the node's first subscriber and the node still
    has to SUBSCRIBE the symbol's Redis channel. Each trial: subscribe a
    symbol nobody on the node watches, publish five ticks at once, wait
    until the node listens to the channel, publish a marker tick; all five
    must have arrived before the marker.

    The gateway loses them only when Redis runs the publish scripts before
    the node's SUBSCRIBE (a race), so this runs up to 3 rounds over 62
    symbols (unsubscribing in between) and stops at the first loss; with
    the race open it fails in a fraction of runs, never when closed."""
    gw = rgw(redis_server)
    pub = rws.open(gw, token=mint("pub1", "publisher"))
    v = rws.open(gw, token=mint("t", "trader"))  # 100 symbols
    missing, trials = {}, 0
    for rnd in range(3):
        base = 6 * rnd
        for sym in RACE_SYMBOLS:
            trials += 1
            conf = v.subscribe([sym])
            assert conf["symbols"] == [sym], conf
            publish(pub, [{"symbol": sym, "price": 10 + i, "volume": 1} for i in range(5)])
            ch = "websocket:tick:" + sym
            wait_until(lambda: dict(rdb.pubsub_numsub(ch))[ch] == 1, 5, "the node on " + ch)
            publish(pub, [{"symbol": sym, "price": 20, "volume": 1}])
            _, before = v.until(lambda m: m.get("symbol") == sym and m.get("seq") == base + 6, 5,
                                "%s marker (seq %d)" % (sym, base + 6))
            seqs = [m["seq"] for m in before if m.get("type") == "price_update"]
            if seqs != [base + 1, base + 2, base + 3, base + 4, base + 5]:
                missing["%s round %d" % (sym, rnd)] = seqs
                break
        if missing:
            break
        r = v.request({"type": "unsubscribe", "symbols": RACE_SYMBOLS})
        assert r["type"] == "unsubscription_confirmed", r
        wait_until(lambda: not rdb.pubsub_channels("websocket:tick:*"), 5, "the node off every tick channel")
    assert not missing, "ticks published after subscription_confirmed never arrived (trial %d; seqs seen before " \
                        "the marker): %r" % (trials, missing)


def test_redis_missing_volume_keeps_the_last_volume(redis_server, rdb, rgw, rws):
    """The same publish as test_missing_volume_keeps_the_last_volume, with
    Redis on: subscribers and the shared history must show the same
    volumes as without Redis."""
    gw = rgw(redis_server)
    pub = rws.open(gw, token=mint("pub1", "publisher"))
    v = rws.open(gw, token=mint("v", "viewer"))
    listen(v, rdb, "AMD")
    publish(pub, [{"symbol": "AMD", "price": 10, "volume": 500}, {"symbol": "AMD", "price": 11}])
    live = [v.recv(), v.recv()]
    hist = v.request({"type": "get_history", "symbol": "AMD"})["updates"]
    assert [(u["price"], u["volume"]) for u in live] == [(10, 500), (11, 500)], live
    assert [(u["price"], u["volume"]) for u in hist] == [(10, 500), (11, 500)], hist


def test_redis_paper_portfolio_is_per_node_and_never_contradicts(redis_server, rdb, rgw, rws):
    """With Redis, the paper broker's book is per node (docs/protocol.md):
    orders are recorded cluster-wide in tickgate:orders, but a node's paper
    fills and portfolio snapshots reach only that node's connections, so
    alice's connection on node 1 never receives node 2's fresh book."""
    n1 = rgw(redis_server)
    n2 = rgw(redis_server)
    ch = "websocket:control"
    wait_until(lambda: dict(rdb.pubsub_numsub(ch))[ch] == 2, 5, "both nodes on the control channel")
    pub = rws.open(n1, token=mint("pub1", "publisher"))
    w = rws.open(n1, token=mint("w", "viewer"))
    listen(w, rdb, "AAPL")
    publish(pub, [{"symbol": "AAPL", "price": 100, "volume": 1}])
    wait_seq(w, "AAPL", 1)
    a1 = rws.open(n1, token=mint("alice", "trader"))
    portfolio_subscribe(a1)
    assert trade(a1, 1, **market("AAPL", "buy", 10))["type"] == "trade_accepted"
    assert a1.recv()["type"] == "trade_filled"
    ev = a1.recv()["event"]
    assert ev["cash"] == pytest.approx(PAPER_CASH - 1000), ev

    a2 = rws.open(n2, token=mint("alice", "trader"))
    snap = portfolio_subscribe(a2)
    assert snap["cash"] == pytest.approx(PAPER_CASH) and snap["positions"] == [], snap
    # node 1's connection got nothing from node 2's book: its next message is
    # the answer to a heartbeat.
    a1.send({"type": "heartbeat", "id": "hb"})
    assert a1.recv()["type"] == "heartbeat_ack"
