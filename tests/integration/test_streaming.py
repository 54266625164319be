"""Streaming on /ws (contract sections 4-6): the message gate, subscribe /
unsubscribe with snapshots, publishing over WebSocket and HTTP, per-symbol
sequencing, fan-out to 1,000 clients, no orphaned streams (WS-003), a
connect/disconnect storm (WS-002), heartbeats (WS-004) and the rate limit.

Tests that need exact tick control run with --feed.simulator=false, so the
only ticks are the ones the test publishes."""
import asyncio
import json
import random
import socket
import struct
import time

import pytest

from conftest import strip_epochs, get_metrics, get_stats, http_json, mint, raise_nofile, wait_stats
from wsraw import OP_PING, OP_TEXT, build_frame, new_key

START = {"AAPL": 189.25, "MSFT": 415.10, "GOOGL": 171.30, "NVDA": 121.80, "TSLA": 248.50, "EUR/USD": 1.0842,
         "BRK.B": 412.60, "BTC-USD": 67250.00}

# The built-in universe (start prices in src/pubsub/symbols.c).
BUILTIN = ("AAPL MSFT GOOGL GOOG AMZN NVDA META TSLA BRK.B JPM V MA UNH JNJ XOM WMT PG HD CVX LLY ABBV MRK KO PEP "
           "AVGO COST ADBE CRM NFLX AMD INTC CSCO ORCL QCOM TXN IBM INTU AMAT MU NOW BAC WFC GS MS C AXP BLK SCHW "
           "PYPL SQ DIS CMCSA T VZ TMUS NKE MCD SBUX BKNG ABNB UBER LYFT BA CAT DE GE HON LMT RTX UPS FDX PFE TMO "
           "ABT DHR BMY AMGN GILD CVS MDT SPY QQQ DIA IWM GLD SLV TLT VTI SHOP SNOW PLTR COIN RIVN F GM SONY TSM "
           "BABA ASML SAP BTC-USD ETH-USD EUR/USD GBP/USD USD/JPY").split()

TICK_FIELDS = {"type", "symbol", "price", "bid", "ask", "volume", "change", "change_percent", "timestamp", "seq"}


def is_error(m, code, id=None):
    return m.get("type") == "error" and m.get("code") == code and (id is None or m.get("id") == id) \
        and isinstance(m.get("message"), str)


def assert_change(m, first):
    """change = price - first price of the session; change_percent =
    change / first * 100, rounded to 4 decimals."""
    change = m["price"] - first
    assert abs(m["change"] - change) <= 1e-6, (m, first)
    pct = change / first * 100
    assert abs(m["change_percent"] - pct) <= 0.00005 + 1e-9, (m, pct)
    assert round(m["change_percent"], 4) == m["change_percent"], m


# ---------------------------------------------------------------------------
# the message gate
# ---------------------------------------------------------------------------

def test_heartbeat_ack(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    t0 = int(time.time() * 1000)
    r = ws.request({"type": "heartbeat"})
    t1 = int(time.time() * 1000)
    assert set(r) == {"type", "server_time"} and r["type"] == "heartbeat_ack", r
    assert isinstance(r["server_time"], int) and not isinstance(r["server_time"], bool), r
    assert t0 - 1000 <= r["server_time"] <= t1 + 1000, (t0, r, t1)


@pytest.mark.parametrize("id", [5, 0, -3, "abc", "x" * 64, ""], ids=["int", "zero", "neg", "str", "str64", "empty"])
def test_reply_echoes_id(tickgate, jclients, id):
    gw = tickgate()
    ws = jclients.open(gw)
    r = ws.request({"type": "heartbeat", "id": id})
    assert r["type"] == "heartbeat_ack" and r["id"] == id and type(r["id"]) is type(id), r


BAD_MESSAGES = {
    "invalid_json": ('{"type": "heartbeat"', "invalid_json", None),
    "not_json_at_all": ("hello", "invalid_json", None),
    "array": ('[{"type": "heartbeat"}]', "invalid_message", None),
    "string": ('"heartbeat"', "invalid_message", None),  # valid JSON, not an object
    "number": ("42", "invalid_message", None),
    "missing_type": ('{"id": 4}', "invalid_message", 4),
    "type_not_string": ('{"type": 7, "id": 4}', "invalid_message", 4),
    "id_65_chars": (json.dumps({"type": "heartbeat", "id": "x" * 65}), "invalid_message", None),
    "id_float": ('{"type": "heartbeat", "id": 1.5}', "invalid_message", None),
    "id_object": ('{"type": "heartbeat", "id": {}}', "invalid_message", None),
    "unknown_type": ('{"type": "foo", "id": 9}', "unknown_type", 9),
    "subscribe_without_symbols": ('{"type": "subscribe", "id": 2}', "invalid_message", 2),
    "subscribe_symbols_not_strings": ('{"type": "subscribe", "symbols": [1, 2], "id": 2}', "invalid_message", 2),
    "unsubscribe_without_symbols": ('{"type": "unsubscribe", "id": 2}', "invalid_message", 2),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_bad_message_errors(tickgate, jclients, case):
    gw = tickgate()
    ws = jclients.open(gw)
    text, code, id = BAD_MESSAGES[case]
    ws.send(text)
    r = ws.recv()
    assert is_error(r, code), r
    if id is not None:
        assert r.get("id") == id, r
    else:
        assert "id" not in r, r
    # The connection stays usable and nothing else was sent.
    assert ws.fence() == []
    assert get_metrics(gw)["tickgate_subscriptions"] == 0


# ---------------------------------------------------------------------------
# subscribe / unsubscribe
# ---------------------------------------------------------------------------

def test_subscribe_confirms_then_snapshots(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    r = ws.request({"type": "subscribe", "symbols": ["AAPL", "MSFT"], "id": "s1"})
    assert strip_epochs(r) == {"type": "subscription_confirmed", "symbols": ["AAPL", "MSFT"], "id": "s1"}, r
    snaps = {}
    for _ in range(2):
        m = ws.recv()
        assert m["type"] == "price_update" and m.get("snapshot") is True, m
        assert TICK_FIELDS <= set(m), m
        snaps[m["symbol"]] = m
    assert set(snaps) == {"AAPL", "MSFT"}
    for sym, m in snaps.items():
        assert m["price"] == START[sym] and m["bid"] == START[sym] and m["ask"] == START[sym], m
        assert m["seq"] == 0 and m["change"] == 0 and m["change_percent"] == 0, m
        assert isinstance(m["timestamp"], int) and m["timestamp"] > 1.6e12, m
    assert ws.fence() == []
    s = get_stats(gw)
    assert (s["subscriptions"], s["active_streams"]) == (2, 2), s


def test_subscribe_failures_by_reason(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    ws.send({"type": "subscribe", "symbols": ["bad sym", "AAPL", "ZZZZ9", "lower", "EUR/USD"], "id": 11})
    got = [ws.recv() for _ in range(5)]  # confirmed, 2 x failed, 2 snapshots
    conf = [m for m in got if m["type"] == "subscription_confirmed"]
    failed = {m["reason"]: m for m in got if m["type"] == "subscription_failed"}
    snaps = [m for m in got if m["type"] == "price_update"]
    assert got[0]["type"] == "subscription_confirmed", got
    assert [strip_epochs(m) for m in conf] == [{"type": "subscription_confirmed", "symbols": ["AAPL", "EUR/USD"], "id": 11}], got
    assert failed == {
        "invalid_symbol": {"type": "subscription_failed", "symbols": ["bad sym", "lower"],
                           "reason": "invalid_symbol", "id": 11},
        "unknown_symbol": {"type": "subscription_failed", "symbols": ["ZZZZ9"], "reason": "unknown_symbol",
                           "id": 11},
    }, got
    assert sorted(m["symbol"] for m in snaps) == ["AAPL", "EUR/USD"], got
    assert all(m.get("snapshot") is True for m in snaps)
    assert ws.fence() == []
    assert get_stats(gw)["subscriptions"] == 2


def test_subscribe_empty_list(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    assert strip_epochs(ws.request({"type": "subscribe", "symbols": [], "id": 1})) == \
        {"type": "subscription_confirmed", "symbols": [], "id": 1}
    assert ws.fence() == []


def test_subscribe_only_failures_sends_no_confirmation(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    r = ws.request({"type": "subscribe", "symbols": ["ZZZZ9"]})
    assert r == {"type": "subscription_failed", "symbols": ["ZZZZ9"], "reason": "unknown_symbol"}, r
    assert ws.fence() == []


@pytest.mark.parametrize("role,limit", [(None, 3), ("viewer", 10), ("trader", 100)])
def test_subscription_limit_per_role(tickgate, jclients, role, limit):
    gw = tickgate("--limits.max_messages_per_minute=100000")
    ws = jclients.open(gw, token=mint("u", role) if role else None)
    assert ws.hello["limits"]["max_subscriptions"] == limit
    want = BUILTIN[:limit + 2] if limit + 2 <= 100 else BUILTIN[:100]
    if limit == 100:
        # 100 in one message (the most allowed), then one more.
        ws.subscribe(BUILTIN[:100])
        r = ws.request({"type": "subscribe", "symbols": [BUILTIN[100]]})
        assert r == {"type": "subscription_failed", "symbols": [BUILTIN[100]], "reason": "limit_exceeded"}, r
    else:
        ws.send({"type": "subscribe", "symbols": want, "id": 1})
        r = ws.recv()
        assert strip_epochs(r) == {"type": "subscription_confirmed", "symbols": want[:limit], "id": 1}, r
        r = ws.recv()
        assert r == {"type": "subscription_failed", "symbols": want[limit:], "reason": "limit_exceeded", "id": 1}, r
        snaps = [ws.recv() for _ in range(limit)]
        assert sorted(m["symbol"] for m in snaps) == sorted(want[:limit])
        # A symbol already held is not counted again; a new one is refused.
        ws.subscribe([want[0]])
        r = ws.request({"type": "subscribe", "symbols": [want[limit]]})
        assert r == {"type": "subscription_failed", "symbols": [want[limit]], "reason": "limit_exceeded"}, r
    assert ws.fence() == []
    assert get_stats(gw)["subscriptions"] == limit


def test_subscribe_more_than_100_symbols_changes_nothing(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("t", "trader"))
    ws.subscribe(["AAPL"])
    r = ws.request({"type": "subscribe", "symbols": BUILTIN[1:102], "id": "big"})
    assert len(BUILTIN[1:102]) == 101
    assert is_error(r, "invalid_message", "big"), r
    assert ws.fence() == []
    s = get_stats(gw)
    assert (s["subscriptions"], s["active_streams"]) == (1, 1), s


def test_resubscribe_is_idempotent(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    pub = jclients.publisher(gw)
    ws.subscribe(["AAPL"])
    pub.publish([{"symbol": "AAPL", "price": 190.0}])
    assert ws.recv()["seq"] == 1
    # Again, twice in one message too: confirmed once more, with a fresh snapshot.
    r = ws.request({"type": "subscribe", "symbols": ["AAPL", "AAPL"]})
    assert strip_epochs(r) == {"type": "subscription_confirmed", "symbols": ["AAPL"]}, r
    snap = ws.recv()
    assert snap["snapshot"] is True and snap["seq"] == 1 and snap["price"] == 190.0, snap
    assert ws.fence() == []
    s = get_stats(gw)
    assert (s["subscriptions"], s["active_streams"]) == (1, 1), s
    # Exactly one copy of the next tick.
    pub.publish([{"symbol": "AAPL", "price": 191.0}])
    m = ws.recv()
    assert (m["seq"], m["price"]) == (2, 191.0) and "snapshot" not in m, m
    assert ws.fence() == []


def test_unsubscribe_stops_updates(tickgate, jclients):
    # One worker: the control subscriber seeing a tick proves that the worker
    # has handled it for every connection before the fence is sent.
    gw = tickgate("--server.workers=1")
    ws = jclients.open(gw)
    control = jclients.open(gw)
    pub = jclients.publisher(gw)
    ws.subscribe(["AAPL", "MSFT"])
    control.subscribe(["AAPL"])
    pub.publish([{"symbol": "AAPL", "price": 190.0}])
    assert ws.recv()["price"] == 190.0
    assert control.recv()["price"] == 190.0
    r = ws.request({"type": "unsubscribe", "symbols": ["AAPL"], "id": "u"})
    assert r == {"type": "unsubscription_confirmed", "symbols": ["AAPL"], "id": "u"}, r
    # AAPL then MSFT in one publish: MSFT is a fence for AAPL on any worker.
    pub.publish([{"symbol": "AAPL", "price": 191.0}, {"symbol": "MSFT", "price": 420.0}])
    m = ws.recv()
    assert (m["type"], m["symbol"], m["price"]) == ("price_update", "MSFT", 420.0), m
    assert control.recv()["price"] == 191.0
    assert ws.fence() == []
    s = get_stats(gw)
    assert (s["subscriptions"], s["active_streams"]) == (2, 2), s
    # Unsubscribing again (or from something never subscribed) is idempotent.
    r = ws.request({"type": "unsubscribe", "symbols": ["AAPL", "TSLA"]})
    assert r == {"type": "unsubscription_confirmed", "symbols": ["AAPL", "TSLA"]}, r
    r = ws.request({"type": "unsubscribe", "symbols": ["MSFT"]})
    assert r["type"] == "unsubscription_confirmed"
    pub.publish([{"symbol": "MSFT", "price": 421.0}, {"symbol": "AAPL", "price": 192.0}])
    assert control.recv()["price"] == 192.0
    assert ws.fence() == []
    s = get_stats(gw)
    assert (s["subscriptions"], s["active_streams"]) == (1, 1), s


def test_more_than_65536_subscriptions_in_one_connection(tickgate, jclients, tmp_path):
    """Issue 13 item 6: a connection's subscription count and capacity were
    16-bit: the 32,769th subscription doubled the capacity to 0 (malloc(0),
    then a 512 KiB memcpy into it), and 65,536 wrapped the count itself.
    The universe holds at most 65,536 symbols, so all of them in one
    connection is the largest count there is."""
    n = 65536
    names = ["S%d" % i for i in range(n)]
    (tmp_path / "syms").write_text("\n".join(names) + "\n")  # no start prices: no snapshots
    gw = tickgate("--feed.symbols_file=%s" % (tmp_path / "syms"), "--limits.max_subscriptions_per_client=100000",
                  "--limits.max_messages_per_minute=100000", "--server.workers=1")
    ws = jclients.open(gw, token=mint("t", "trader"))
    pub = jclients.publisher(gw)
    assert ws.hello["limits"]["max_subscriptions"] == 100000
    # In rounds of 50 subscribes: each confirmation carries 100 epochs, and
    # all 656 unread would pass the replies' bound (2 x max_outbound_bytes).
    for start in range(0, n, 5000):
        ks = range(start, min(n, start + 5000), 100)
        for k in ks:
            ws.send({"type": "subscribe", "symbols": names[k:k + 100], "id": k})
        for k in ks:
            r = ws.recv(timeout=30)
            assert strip_epochs(r) == {"type": "subscription_confirmed", "symbols": names[k:k + 100], "id": k}, r
    assert get_stats(gw)["subscriptions"] == n
    # Every subscription is live, the last one as much as the first.
    pub.publish([{"symbol": names[0], "price": 1.5}, {"symbol": names[-1], "price": 2.5}])
    assert [(m["symbol"], m["price"]) for m in (ws.recv(), ws.recv())] == [(names[0], 1.5), (names[-1], 2.5)]
    r = ws.request({"type": "unsubscribe", "symbols": names[:100]})
    assert r["type"] == "unsubscription_confirmed"
    assert ws.fence() == []
    assert get_stats(gw)["subscriptions"] == n - 100
    ws.close()  # the release drops the rest
    wait_stats(gw, lambda s: s["subscriptions"] == 0 and s["active_streams"] == 0, 30, "every subscription released")


# ---------------------------------------------------------------------------
# publishing
# ---------------------------------------------------------------------------

def test_publish_price_update_fields_seq_and_change(tickgate, jclients):
    gw = tickgate()
    sub = jclients.open(gw)
    pub = jclients.publisher(gw)
    sub.subscribe(["AAPL"])
    r = pub.publish([{"symbol": "AAPL", "price": 200.0, "volume": 10}], id=1)
    assert r == {"type": "published", "count": 1, "id": 1}, r
    m = sub.recv()
    assert set(m) == TICK_FIELDS, m
    assert m["type"] == "price_update" and m["symbol"] == "AAPL", m
    assert (m["price"], m["bid"], m["ask"], m["volume"], m["seq"]) == (200.0, 200.0, 200.0, 10, 1), m
    assert abs(m["timestamp"] - time.time() * 1000) < 10000, m
    assert m["change"] == 10.75 and m["change_percent"] == 5.6803, m
    assert_change(m, 189.25)

    ts = int(time.time() * 1000) - 5000
    prices = [188.5, 190.123456, 1.0, 250.0]
    r = pub.publish([{"symbol": "AAPL", "price": p, "bid": p - 0.01, "ask": p + 0.01, "volume": 100 + i,
                      "timestamp": ts + i} for i, p in enumerate(prices)], id=2)
    assert r == {"type": "published", "count": 4, "id": 2}, r
    for i, p in enumerate(prices):
        m = sub.recv()
        assert m["seq"] == 2 + i, m
        assert abs(m["price"] - p) < 1e-9 and abs(m["bid"] - (p - 0.01)) < 1e-6 and abs(m["ask"] - (p + 0.01)) < 1e-6, m
        assert m["volume"] == 100 + i and m["timestamp"] == ts + i, m
        assert_change(m, 189.25)  # always against the session's first price
    # Without volume the last volume is kept; bid/ask default to the price.
    pub.publish([{"symbol": "AAPL", "price": 189.25}])
    m = sub.recv()
    assert (m["seq"], m["volume"], m["bid"], m["ask"], m["change"], m["change_percent"]) == \
        (6, 103, 189.25, 189.25, 0, 0), m
    assert sub.fence() == []


def test_seq_is_per_symbol(tickgate, jclients):
    gw = tickgate()
    sub = jclients.open(gw)
    pub = jclients.publisher(gw)
    sub.subscribe(["AAPL", "MSFT", "EUR/USD"])
    ups = []
    for i in range(30):
        sym = ["AAPL", "MSFT", "EUR/USD"][i % 3 if i < 15 else 0]
        ups.append({"symbol": sym, "price": round(START[sym] + i * 0.01, 4)})
    pub.publish(ups)
    got = [sub.recv() for _ in range(30)]
    last = {}
    for u, m in zip(ups, got):
        assert m["symbol"] == u["symbol"] and m["price"] == u["price"], (u, m)
        assert m["seq"] == last.get(m["symbol"], 0) + 1, (m, last)
        last[m["symbol"]] = m["seq"]
        assert_change(m, START[m["symbol"]])
    assert last == {"AAPL": 20, "MSFT": 5, "EUR/USD": 5}
    assert sub.fence() == []
    # A later subscriber's snapshot carries the latest seq and price.
    late = jclients.open(gw)
    late.send({"type": "subscribe", "symbols": ["MSFT"]})
    late.expect("subscription_confirmed")
    snap = late.recv()
    assert got[13]["symbol"] == "MSFT"
    assert snap["snapshot"] is True and snap["seq"] == 5 and snap["price"] == got[13]["price"], snap


INVALID_TICKS = {
    "unknown_symbol": [{"symbol": "ZZZZ9", "price": 10}],
    "invalid_symbol": [{"symbol": "bad sym", "price": 10}],
    "price_zero": [{"symbol": "AAPL", "price": 0}],
    "price_negative": [{"symbol": "AAPL", "price": -5}],
    "price_string": [{"symbol": "AAPL", "price": "200.0"}],
    "price_missing": [{"symbol": "AAPL", "volume": 5}],
    "symbol_missing": [{"price": 5}],
    "not_an_object": ["AAPL"],
    "valid_then_invalid": [{"symbol": "AAPL", "price": 201.0}, {"symbol": "AAPL", "price": -1}],
    "volume_string": [{"symbol": "AAPL", "price": 201.0, "volume": "10"}],
    "more_than_1000": [{"symbol": "AAPL", "price": 200.0}] * 1001,
    # Issue 13 item 15: values a price_update would print as 0, and crossed quotes.
    "price_prints_as_0": [{"symbol": "AAPL", "price": 1e-300}],
    "price_below_one_step": [{"symbol": "AAPL", "price": 0.0000009}],
    "bid_prints_as_0": [{"symbol": "AAPL", "price": 10, "bid": 1e-300}],
    "ask_prints_as_0": [{"symbol": "AAPL", "price": 10, "ask": 4e-7}],
    "volume_prints_as_0": [{"symbol": "AAPL", "price": 10, "volume": 0.00004}],
    "price_too_big": [{"symbol": "AAPL", "price": 1.5e12}],
    "bid_above_ask": [{"symbol": "AAPL", "price": 100, "bid": 100.02, "ask": 100.01}],
    "bid_above_price_no_ask": [{"symbol": "AAPL", "price": 100, "bid": 100.5}],
    "ask_below_price_no_bid": [{"symbol": "AAPL", "price": 100, "ask": 99.5}],
    "valid_then_crossed": [{"symbol": "AAPL", "price": 100}, {"symbol": "AAPL", "price": 100, "bid": 2, "ask": 1}],
}


@pytest.mark.parametrize("case", sorted(INVALID_TICKS))
def test_publish_invalid_tick_publishes_nothing(tickgate, jclients, case):
    gw = tickgate()
    sub = jclients.open(gw)
    pub = jclients.publisher(gw)
    sub.subscribe(["AAPL"])
    r = pub.publish(INVALID_TICKS[case], id="bad")
    assert is_error(r, "invalid_message", "bad"), r
    assert get_metrics(gw)["tickgate_ticks_published_total"] == 0
    # The next valid tick is seq 1: nothing was sequenced before it.
    assert pub.publish([{"symbol": "AAPL", "price": 199.0}]) == {"type": "published", "count": 1}
    m = sub.recv()
    assert (m["type"], m["seq"], m["price"]) == ("price_update", 1, 199.0), m
    assert sub.fence() == []


def test_publish_precision_edges_are_shown_as_given(tickgate, jclients):
    """The smallest values a price_update can show (one printed step) are
    accepted and arrive unchanged; bid 0, volume 0 and a locked quote
    (bid == ask) are fine too."""
    gw = tickgate()
    sub = jclients.open(gw)
    pub = jclients.publisher(gw)
    sub.subscribe(["AAPL"])
    ups = [{"symbol": "AAPL", "price": 0.000001, "bid": 0, "ask": 0.000002, "volume": 0.0001},
           {"symbol": "AAPL", "price": 5, "bid": 5, "ask": 5, "volume": 0}]
    assert pub.publish(ups) == {"type": "published", "count": 2}
    a, b = sub.recv(), sub.recv()
    assert (a["price"], a["bid"], a["ask"], a["volume"]) == (0.000001, 0, 0.000002, 0.0001), a
    assert (b["price"], b["bid"], b["ask"], b["volume"]) == (5, 5, 5, 0), b


@pytest.mark.parametrize("updates", ['"AAPL"', "{}", "null"], ids=["string", "object", "null"])
def test_publish_updates_not_an_array(tickgate, jclients, updates):
    gw = tickgate()
    pub = jclients.publisher(gw)
    pub.send('{"type": "publish", "updates": %s, "id": 1}' % updates)
    assert is_error(pub.recv(), "invalid_message", 1)


def test_publish_empty_list(tickgate, jclients):
    gw = tickgate()
    pub = jclients.publisher(gw)
    assert pub.publish([]) == {"type": "published", "count": 0}


def test_http_publish(tickgate, jclients):
    gw = tickgate()
    sub = jclients.open(gw)
    sub.subscribe(["AAPL", "MSFT"])
    body = json.dumps({"updates": [{"symbol": "AAPL", "price": 200.5, "volume": 7},
                                   {"symbol": "MSFT", "price": 416.0}]}).encode()
    r = http_json(gw, "POST", "/api/publish", {"Authorization": "Bearer " + mint("feed", "publisher"),
                                               "Content-Type": "application/json"}, body)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json"), r
    assert r.json() == {"published": 2, "user_events": 0}, r
    a, b = sub.recv(), sub.recv()
    assert (a["symbol"], a["price"], a["volume"], a["seq"]) == ("AAPL", 200.5, 7, 1), a
    assert (b["symbol"], b["price"], b["seq"]) == ("MSFT", 416.0, 1), b
    assert_change(a, 189.25)
    assert_change(b, 415.10)
    # admin and super_admin may publish too.
    for role in ("admin", "super_admin"):
        r = http_json(gw, "POST", "/api/publish", {"Authorization": "Bearer " + mint("x", role)},
                      b'{"updates": [{"symbol": "AAPL", "price": 201}]}')
        assert r.status == 200 and r.json() == {"published": 1, "user_events": 0}, r
    assert [m["seq"] for m in (sub.recv(), sub.recv())] == [2, 3]
    assert sub.fence() == []


@pytest.mark.parametrize("case", ["no_creds", "bad_token", "viewer", "trader", "malformed_json", "not_object",
                                  "invalid_tick"])
def test_http_publish_refusals(tickgate, jclients, case):
    gw = tickgate()
    sub = jclients.open(gw)
    sub.subscribe(["AAPL"])
    good = b'{"updates": [{"symbol": "AAPL", "price": 200}]}'
    hdr = {"Authorization": "Bearer " + mint("feed", "publisher")}
    want, body = {"no_creds": (401, good), "bad_token": (401, good), "viewer": (403, good),
                  "trader": (403, good), "malformed_json": (400, b'{"updates": [}'),
                  "not_object": (400, b'[1, 2]'), "invalid_tick": (400, b'{"updates": [{"symbol": "AAPL"}]}')}[case]
    if case == "no_creds":
        hdr = {}
    elif case == "bad_token":
        hdr = {"Authorization": "Bearer " + mint("feed", "publisher")[:-4] + "AAAA"}
    elif case in ("viewer", "trader"):
        hdr = {"Authorization": "Bearer " + mint("v", case)}
    r = http_json(gw, "POST", "/api/publish", hdr, body)
    assert r.status == want, r
    err = r.json()
    assert isinstance(err.get("error"), str) and isinstance(err.get("message"), str), err
    assert get_metrics(gw)["tickgate_ticks_published_total"] == 0
    assert sub.fence() == []


def test_http_publish_wrong_method(tickgate):
    gw = tickgate()
    r = http_json(gw, "GET", "/api/publish")
    assert r.status == 405 and "POST" in r.headers.get("allow", ""), r


# ---------------------------------------------------------------------------
# fan-out at scale
# ---------------------------------------------------------------------------

N_CLIENTS = 1000
N_TICKS = 20


def test_fanout_1000_clients_every_tick_once_in_order(tickgate):
    import websockets

    have = raise_nofile(4 * N_CLIENTS + 256)
    assert have >= 2 * N_CLIENTS + 100, "open-file limit %d is too low for %d clients" % (have, N_CLIENTS)
    gw = tickgate("--server.workers=2", "--limits.max_messages_per_minute=100000",
                  "--limits.max_connections_per_ip=%d" % (N_CLIENTS + 10),
                  "--limits.max_connects_per_ip_per_minute=100000")
    uri = "ws://%s:%d/ws" % (gw.host, gw.port)
    pub_token = mint("feed", "publisher")

    async def connect_one():
        ws = await websockets.connect(uri, open_timeout=30, close_timeout=10, max_size=None, compression=None,
                                      ping_interval=None)
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connected", hello
        await ws.send('{"type":"subscribe","symbols":["AAPL"]}')
        conf = json.loads(await ws.recv())
        assert strip_epochs(conf) == {"type": "subscription_confirmed", "symbols": ["AAPL"]}, conf
        snap = json.loads(await ws.recv())
        assert snap["snapshot"] is True and snap["seq"] == 0 and snap["price"] == 189.25, snap
        return ws

    async def collect(i, ws):
        got = []
        while True:
            m = json.loads(await ws.recv())
            assert m["type"] == "price_update" and m["symbol"] == "AAPL", (i, m)
            got.append(m["seq"])
            if m["seq"] >= N_TICKS:
                break
        # Anything after the last tick (a duplicate) would arrive before this ack.
        await ws.send('{"type":"heartbeat","id":"end"}')
        m = json.loads(await ws.recv())
        assert m["type"] == "heartbeat_ack" and m["id"] == "end", (i, got, m)
        return got

    async def main():
        conns = []
        try:
            for start in range(0, N_CLIENTS, 100):
                conns += await asyncio.gather(*[connect_one() for _ in range(start, min(N_CLIENTS, start + 100))])
            s = get_stats(gw)
            assert s["subscriptions"] == N_CLIENTS and s["active_streams"] == 1, s
            assert sum(s["connections"].values()) == N_CLIENTS, s
            pub = await websockets.connect(uri, extra_headers={"Authorization": "Bearer " + pub_token},
                                           open_timeout=10, compression=None, ping_interval=None)
            conns.append(pub)
            assert json.loads(await pub.recv())["role"] == "publisher"
            readers = [asyncio.ensure_future(collect(i, ws)) for i, ws in enumerate(conns[:N_CLIENTS])]
            t0 = time.monotonic()
            for k in range(1, N_TICKS + 1):
                await pub.send(json.dumps({"type": "publish", "id": k,
                                           "updates": [{"symbol": "AAPL", "price": 190 + k / 100}]}))
                r = json.loads(await pub.recv())
                assert r == {"type": "published", "count": 1, "id": k}, r
            results = await asyncio.gather(*readers)
            elapsed = time.monotonic() - t0
            for i, seqs in enumerate(results):
                assert seqs == list(range(1, N_TICKS + 1)), "client %d got seqs %s" % (i, seqs)
            return elapsed
        finally:
            await asyncio.gather(*[ws.close() for ws in conns], return_exceptions=True)

    elapsed = asyncio.run(asyncio.wait_for(main(), timeout=50))
    assert elapsed < 30, elapsed
    m = get_metrics(gw)
    assert m["tickgate_ticks_published_total"] == N_TICKS
    assert m["tickgate_fanout_dropped_total"] == 0
    assert m["tickgate_fanout_seconds_count"] >= N_TICKS
    wait_stats(gw, lambda s: s["subscriptions"] == 0 and s["active_streams"] == 0 and s["connections_open"] == 0,
               timeout=10, what="all subscriptions released")


# ---------------------------------------------------------------------------
# no orphaned streams (WS-003)
# ---------------------------------------------------------------------------

def test_no_orphaned_streams(tickgate, jclients):
    gw = tickgate("--server.workers=2", "--limits.max_connections_per_ip=100", simulator=True)
    rng = random.Random(3)
    held = []
    for i in range(24):
        ws = jclients.open(gw, token=mint("u%d" % i, "trader"))
        syms = rng.sample(BUILTIN[:12], rng.randint(1, 5))
        ws.subscribe(syms)
        held.append((ws, set(syms)))
    distinct = set().union(*(s for _, s in held))
    s = get_stats(gw)
    assert s["active_streams"] == len(distinct), (s, distinct)
    assert s["subscriptions"] == sum(len(x) for _, x in held), s
    # A third unsubscribe, a third close cleanly, a third just drop TCP.
    for i, (ws, syms) in enumerate(held):
        if i % 3 == 0:
            ws.send({"type": "unsubscribe", "symbols": sorted(syms)})
            ws.until(lambda m: m["type"] == "unsubscription_confirmed")
            syms.clear()
        elif i % 3 == 1:
            ws.raw.send_close(1000)
            ws.raw.expect_close(1000, reply=False)
            syms.clear()
        else:
            ws.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            ws.close()
            syms.clear()
        remaining = set().union(*(s for _, s in held))
        nsubs = sum(len(x) for _, x in held)
        # Release is asynchronous; the gauge must reach the live figure.
        wait_stats(gw, lambda st: st["active_streams"] == len(remaining) and st["subscriptions"] == nsubs,
                   timeout=10, what="active_streams == %d" % len(remaining))
    s = get_stats(gw)
    assert (s["active_streams"], s["subscriptions"]) == (0, 0), s
    m = get_metrics(gw)
    assert m["tickgate_active_streams"] == 0 and m["tickgate_subscriptions"] == 0, m
    # The unsubscribed third is still connected, and gets no more updates.
    for i, (ws, _) in enumerate(held):
        if i % 3 == 0:
            assert ws.fence() == []
    s = wait_stats(gw, lambda st: st["connections_open"] == 8, timeout=10, what="8 connections left")
    for i, (ws, _) in enumerate(held):
        if i % 3 == 0:
            ws.raw.send_close(1000)
            ws.raw.expect_close(1000, reply=False)
    wait_stats(gw, lambda st: st["connections_open"] == 0 and sum(st["connections"].values()) == 0, timeout=10,
               what="all connections released")


# ---------------------------------------------------------------------------
# connect/disconnect storm (WS-002)
# ---------------------------------------------------------------------------

STORM_CLIENTS = 200
STORM_ROUNDS = 4


def _upgrade_request(host, port, path="/ws"):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, new_key())).encode()


def test_connect_disconnect_storm(tickgate):
    import websockets

    raise_nofile(4 * STORM_CLIENTS + 256)
    gw = tickgate("--feed.sim_ticks_per_s=2000", "--server.workers=2", "--limits.max_connections_per_ip=100000",
                  "--limits.max_connects_per_ip_per_minute=100000", "--limits.max_messages_per_minute=100000",
                  simulator=True)
    uri = "ws://%s:%d/ws" % (gw.host, gw.port)
    rng = random.Random(20240601)

    async def lib_client(kind, syms):
        ws = await websockets.connect(uri, open_timeout=20, close_timeout=5, compression=None, ping_interval=None)
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "symbols": syms}))
        if kind == 0:  # wait for the confirmation and some traffic, then close properly
            await ws.recv()
            await ws.recv()
            await ws.close()
        elif kind == 6:  # read a few live updates, unsubscribe half-way, then drop TCP
            for _ in range(5):
                await ws.recv()
            await ws.send(json.dumps({"type": "unsubscribe", "symbols": syms[:1]}))
            await ws.recv()
            ws.transport.abort()
        else:  # no close handshake: just drop the TCP connection
            ws.transport.abort()

    async def raw_client(kind, syms):
        reader, writer = await asyncio.open_connection(gw.host, gw.port)
        try:
            if kind == 2:  # half a handshake
                writer.write(_upgrade_request(gw.host, gw.port)[:40])
                await writer.drain()
                return
            writer.write(_upgrade_request(gw.host, gw.port))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            frame = build_frame(OP_TEXT, json.dumps({"type": "subscribe", "symbols": syms}))
            if kind == 3:  # subscribe, then RST with unread data
                writer.write(frame)
                await writer.drain()
                await reader.read(100)
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == 4:  # half a frame
                writer.write(frame[:len(frame) // 2])
                await writer.drain()
            else:  # subscribe and FIN without reading anything
                writer.write(frame)
                await writer.drain()
        finally:
            if kind == 3:
                writer.transport.abort()
            else:
                writer.close()

    async def observer_loop(ws, counter):
        async for raw in ws:
            m = json.loads(raw)
            if m["type"] == "price_update":
                counter[0] += 1

    upgraded = [1]  # the observer

    async def main():
        obs = await websockets.connect(uri, compression=None, ping_interval=None)
        await obs.recv()
        await obs.send('{"type":"subscribe","symbols":["AAPL"]}')
        counter = [0]
        reader = asyncio.ensure_future(observer_loop(obs, counter))
        for rnd in range(STORM_ROUNDS):
            jobs = []
            for i in range(STORM_CLIENTS):
                syms = rng.sample(BUILTIN, rng.randint(1, 3))
                kind = rng.randrange(7)
                upgraded[0] += kind != 2
                jobs.append(lib_client(kind, syms) if kind in (0, 1, 6) else raw_client(kind, syms))
            results = await asyncio.gather(*jobs, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, "round %d: %d client errors, first %r" % (rnd, len(errors), errors[0])
            r = http_json(gw, "GET", "/health")
            assert r.status == 200 and r.json()["status"] == "healthy", r
        before = counter[0]
        # The observer still gets the simulator's updates after the storm.
        deadline = time.monotonic() + 10
        while counter[0] < before + 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert counter[0] >= before + 5, "observer got no updates after the storm"
        st = await asyncio.get_running_loop().run_in_executor(None, lambda: wait_stats(
            gw, lambda s: s["connections_open"] == 1 and s["subscriptions"] == 1 and s["active_streams"] == 1,
            timeout=10, what="only the observer left"))
        await obs.close()
        await reader
        return st

    asyncio.run(asyncio.wait_for(main(), timeout=60))
    s = wait_stats(gw, lambda s: s["connections_open"] == 0 and s["subscriptions"] == 0 and s["active_streams"] == 0
                   and sum(s["connections"].values()) == 0, timeout=10, what="gauges back to 0")
    assert s["connections_total"] == upgraded[0], (s, upgraded)
    m = get_metrics(gw)
    assert m["tickgate_active_streams"] == 0 and m["tickgate_subscriptions"] == 0
    assert all(v == 0 for k, v in m.items() if k.startswith("tickgate_connections{")), m
    assert m["tickgate_fanout_dropped_total"] == 0
    r = http_json(gw, "GET", "/health")
    assert r.status == 200 and r.json()["status"] == "healthy", r


# ---------------------------------------------------------------------------
# heartbeat (WS-004)
# ---------------------------------------------------------------------------

HB_FLAGS = ("--limits.heartbeat_interval_s=1", "--limits.heartbeat_timeout_s=2", "--limits.sweep_interval_s=1")
# With a 2 s timeout the first ping (due 1 s after connect, sent at the next
# sweep) and the timeout can fall in the same sweep; 3 s leaves a sweep in
# between, so the tests that count pings use it.
HB_FLAGS_PINGS = ("--limits.heartbeat_interval_s=1", "--limits.heartbeat_timeout_s=3",
                  "--limits.sweep_interval_s=1")


def test_silent_client_closed_4000_active_client_stays(tickgate, jclients):
    import threading

    gw = tickgate(*HB_FLAGS)
    silent = jclients.open(gw, pong=False)
    assert silent.hello["heartbeat_interval_s"] == 1
    alive = jclients.open(gw, pong=False)  # answers no ping, but sends heartbeats
    stop, failures, acks = threading.Event(), [], [0]

    def keep_alive():
        try:
            n = 0
            while not stop.is_set():
                n += 1
                r = alive.request({"type": "heartbeat", "id": n}, timeout=3)
                while r.get("type") != "heartbeat_ack":
                    r = alive.recv(timeout=3)
                assert r["id"] == n, r
                acks[0] += 1
                stop.wait(0.4)  # the client's own heartbeat period
        except Exception as e:  # noqa: BLE001
            failures.append(e)

    t = threading.Thread(target=keep_alive, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        code, _, before = silent.raw.expect_close(4000, timeout=10)
        elapsed = time.monotonic() - t0
        assert 1.5 <= elapsed <= 6, elapsed
        assert not [f for f in before if f.opcode == OP_TEXT], before
        # Keep the other client going for more than another timeout period.
        target = acks[0] + 6
        deadline = time.monotonic() + 6
        while acks[0] < target and not failures and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
    assert not failures, failures
    assert acks[0] >= 8, acks
    assert alive.pings >= 1, "the active client was never pinged"
    r = alive.request({"type": "heartbeat", "id": "last"})
    assert r["type"] == "heartbeat_ack", r
    m = get_metrics(gw)
    assert m['tickgate_disconnections_total{reason="heartbeat_timeout"}'] == 1, m
    assert m['tickgate_connections{role="anonymous"}'] == 1, m
    assert abs(m["tickgate_sweeper_last_run_timestamp_seconds"] - time.time()) <= 3, m
    assert http_json(gw, "GET", "/health").json()["checks"]["sweeper"] == "ok"


def test_silent_client_is_pinged_before_4000(tickgate, jclients):
    gw = tickgate(*HB_FLAGS_PINGS)
    silent = jclients.open(gw, pong=False)
    t0 = time.monotonic()
    code, _, before = silent.raw.expect_close(4000, timeout=10)
    elapsed = time.monotonic() - t0
    pings = [f for f in before if f.opcode == OP_PING]
    assert pings, "no ping before the heartbeat timeout; frames: %r" % (before,)
    assert all(f.payload == b"" for f in pings), pings
    assert 2.5 <= elapsed <= 6, elapsed


def test_client_answering_pings_is_not_closed(tickgate, jclients):
    gw = tickgate(*HB_FLAGS_PINGS)
    ws = jclients.open(gw, pong=True)
    # Read for 4.5 s (longer than the timeout plus a sweep): pings arrive and
    # are answered with pongs; nothing else, and no close.
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        try:
            m = ws.recv(timeout=max(0.05, deadline - time.monotonic()))
            raise AssertionError("unexpected message %r" % m)
        except AssertionError as e:
            if "no message from the server" not in str(e):
                raise
    assert ws.pings >= 2, ws.pings
    assert ws.request({"type": "heartbeat"})["type"] == "heartbeat_ack"


def test_heartbeat_keeps_its_own_clock_whatever_the_sweep_period(tickgate, jclients):
    """Pings every heartbeat_interval_s and close 4000 at heartbeat_timeout_s
    with the default sweep period (5 s): liveness is not the sweeper's."""
    gw = tickgate("--limits.heartbeat_interval_s=1", "--limits.heartbeat_timeout_s=3")
    silent = jclients.open(gw, pong=False)
    t0 = time.monotonic()
    pings = []
    while True:
        f = silent.raw.recv_frame(timeout=8)
        if f.opcode != OP_PING:
            break
        pings.append(time.monotonic() - t0)
    elapsed = time.monotonic() - t0
    assert f.opcode == 0x8, f  # close
    assert struct.unpack("!H", f.payload[:2])[0] == 4000, f.payload
    assert len(pings) >= 2, "pings at %r before the close at %.2f s" % (pings, elapsed)
    assert pings[0] <= 1.6 and all(b - a <= 1.6 for a, b in zip(pings, pings[1:])), pings
    assert 2.5 <= elapsed <= 4.5, "closed at %.2f s, pings at %r" % (elapsed, pings)


# ---------------------------------------------------------------------------
# rate limit
# ---------------------------------------------------------------------------

def test_rate_limit(tickgate, jclients):
    gw = tickgate("--limits.max_messages_per_minute=5")
    ws = jclients.open(gw)
    assert ws.hello["limits"]["max_messages_per_minute"] == 5
    for i in range(5):
        ws.send({"type": "heartbeat", "id": i})
    ws.send({"type": "heartbeat", "id": 5})
    ws.send({"type": "subscribe", "symbols": ["AAPL"], "id": 6})
    got = [ws.recv() for _ in range(7)]
    assert [m["type"] for m in got[:5]] == ["heartbeat_ack"] * 5, got
    assert [m["id"] for m in got] == list(range(7)), got
    assert is_error(got[5], "rate_limited", 5), got
    assert is_error(got[6], "rate_limited", 6), got  # dropped: no subscription
    m = get_metrics(gw)
    assert m["tickgate_rate_limited_total"] == 2, m
    assert m['tickgate_security_violations_total{kind="rate_limited"}'] == 2, m
    assert m["tickgate_subscriptions"] == 0, m
    # The bucket is the identity's: another anonymous connection from this
    # IP shares it, a user has its own.
    same = jclients.open(gw)
    assert is_error(same.request({"type": "heartbeat", "id": 8}), "rate_limited", 8)
    other = jclients.open(gw, token=mint("u-rate", "viewer"))
    assert other.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
