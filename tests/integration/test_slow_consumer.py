"""Slow consumers (contract sections 5 and 7): a client that stops reading
while ticks keep coming. With `conflate` (the default) the server keeps only
the newest update per symbol once the client's socket is backed up past
limits.max_outbound_bytes; when the client reads again it sees seqs strictly
increasing and ends with the newest price, and the server's memory stays
bounded. With `disconnect` the client is closed with 1013.

The slow client is a raw socket with a small SO_RCVBUF set before connect.
The kernel still buffers a few MB between the server and a client that
does not read (the server's send buffer grows by itself), so the tests
publish until the server reports the policy at work (bounded), then go on."""
import json
import os
import time

from conftest import get_metrics, get_stats, rss_kb, wait_metrics
from wsraw import OP_CLOSE, OP_TEXT, PeerClosed

RCVBUF = 4096
STEP = 500              # ticks per publish message (at most 1000 allowed)
MAX_TICKS = 200000      # upper bound while waiting for the policy to apply
EXTRA_TICKS = 5000      # published once conflation is under way
RSS_LIMIT_KB = 200 * 1024


def price_of(i):
    return round(100 + i * 0.01, 2)


def start(tickgate, policy, *flags):
    return tickgate("--limits.max_outbound_bytes=4096", "--limits.slow_consumer=%s" % policy,
                    "--limits.max_messages_per_minute=100000", *flags)


def subscribe_slow(jclients, gw):
    slow = jclients.small(gw, RCVBUF)
    slow.subscribe(["AAPL"])
    return slow


class Publisher:
    """Publishes AAPL ticks with seq-derived prices: tick n has price_of(n)
    and volume n (the simulator is off, so n is also its seq)."""

    def __init__(self, ws):
        self.ws = ws
        self.sent = 0

    def burst(self, n=STEP):
        ups = [{"symbol": "AAPL", "price": price_of(self.sent + i), "volume": self.sent + i}
               for i in range(1, n + 1)]
        r = self.ws.publish(ups)
        assert r == {"type": "published", "count": n}, r
        self.sent += n

    def until(self, gw, metric, peak_rss=None):
        """Publishes until /metrics metric > 0; returns the metrics."""
        while True:
            self.burst()
            m = get_metrics(gw)
            if peak_rss is not None:
                peak_rss[0] = max(peak_rss[0], rss_kb(gw.pid))
            if m[metric] > 0:
                return m
            assert self.sent < MAX_TICKS, "%s still 0 after %d ticks to a client that does not read" \
                % (metric, self.sent)


def read_ticks_until_price(slow, last_price, timeout=30):
    """Reads the slow client's stream until the price_update carrying
    last_price; returns every price_update read."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the newest price %r never arrived; last seen %r" % (last_price, got[-1:] or None)
        m = slow.recv(timeout=remaining)
        assert m["type"] == "price_update" and m["symbol"] == "AAPL", m
        got.append(m)
        if m["price"] == last_price:
            return got


def test_conflation_delivers_newest_and_bounds_memory(tickgate, jclients):
    gw = start(tickgate, "conflate")
    slow = subscribe_slow(jclients, gw)
    pub = Publisher(jclients.publisher(gw))
    peak = [rss_kb(gw.pid)]
    rss0 = peak[0]
    m = pub.until(gw, "tickgate_slow_consumer_conflated_total", peak)
    backed_up_after = pub.sent
    for _ in range(EXTRA_TICKS // STEP):
        pub.burst()
    peak[0] = max(peak[0], rss_kb(gw.pid))
    m = get_metrics(gw)
    assert m["tickgate_slow_consumer_conflated_total"] >= EXTRA_TICKS - STEP, m
    assert m["tickgate_slow_consumer_disconnects_total"] == 0, m
    # The slow client reads now: strictly increasing seqs, gaps allowed, and
    # the newest price arrives.
    got = read_ticks_until_price(slow, price_of(pub.sent))
    seqs = [t["seq"] for t in got]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), "seqs not strictly increasing: %s" % seqs[:50]
    assert got[-1]["seq"] == pub.sent and got[-1]["volume"] == pub.sent, got[-1]
    assert len(got) < pub.sent, "nothing was conflated (%d updates read of %d)" % (len(got), pub.sent)
    for t in got:  # every update read is a real tick, consistent with its seq
        assert t["price"] == price_of(t["seq"]) and "snapshot" not in t, t
    # Nothing stale after the newest.
    assert slow.fence() == []
    peak[0] = max(peak[0], rss_kb(gw.pid))
    assert peak[0] < RSS_LIMIT_KB, "server RSS %d kB (started at %d kB)" % (peak[0], rss0)
    # It is an ordinary client again: the next ticks arrive one by one.
    pub.ws.publish([{"symbol": "AAPL", "price": 150.0}, {"symbol": "AAPL", "price": 151.0}])
    a, b = slow.recv(), slow.recv()
    assert (a["seq"], a["price"], b["seq"], b["price"]) == (pub.sent + 1, 150.0, pub.sent + 2, 151.0), (a, b)
    # /api/stats reports the same counter (it can only have grown since).
    assert get_stats(gw)["slow_consumer_conflated_total"] >= m["tickgate_slow_consumer_conflated_total"]
    print("conflation began after %d ticks; %d updates read of %d" % (backed_up_after, len(got), pub.sent))


def test_conflation_memory_stays_bounded_for_many_slow_clients(tickgate, jclients):
    n_clients = 8
    gw = start(tickgate, "conflate", "--limits.max_connections_per_ip=100")
    slows = [subscribe_slow(jclients, gw) for _ in range(n_clients)]
    pub = Publisher(jclients.publisher(gw))
    rss0 = rss_kb(gw.pid)
    pub.until(gw, "tickgate_slow_consumer_conflated_total")
    # Well past the point where every client's socket is full: queued in
    # full this would be n_clients x 20,000 x ~200 bytes = ~32 MB more.
    for _ in range(20000 // STEP):
        pub.burst()
    grown = rss_kb(gw.pid) - rss0
    # Under AddressSanitizer freed blocks sit in its quarantine (256 MB by
    # default), so RSS says nothing about what the server keeps there.
    bound = 16 * 1024 if not os.environ.get("TICKGATE_SANITIZED") else 320 * 1024
    assert grown < bound, "server RSS grew by %d kB for %d slow clients" % (grown, n_clients)
    for s in slows:
        got = read_ticks_until_price(s, price_of(pub.sent))
        assert got[-1]["seq"] == pub.sent
        seqs = [t["seq"] for t in got]
        assert all(a < b for a, b in zip(seqs, seqs[1:]))


def test_reading_client_is_not_a_slow_consumer(tickgate, jclients):
    """A client that reads everything promptly sees every seq even when the
    per-connection cap is small: the slow-consumer policy is for a socket
    that is backed up, not for a burst the server has not flushed yet.
    Bursts of 50 ticks (~10 kB) stay far below the kernel's socket buffers."""
    gw = tickgate("--limits.max_outbound_bytes=4096", "--limits.max_messages_per_minute=100000",
                  "--server.workers=1")
    reader = jclients.open(gw)
    reader.subscribe(["AAPL"])
    pub = jclients.publisher(gw)
    seen = []
    for b in range(20):
        pub.publish([{"symbol": "AAPL", "price": price_of(b * 50 + i)} for i in range(1, 51)])
        while not seen or seen[-1] < (b + 1) * 50:
            seen.append(reader.recv(timeout=5)["seq"])
    m = get_metrics(gw)
    assert seen == list(range(1, 1001)), \
        "a promptly reading client lost %d of 1000 ticks (conflated_total %d)" \
        % (1000 - len(seen), m["tickgate_slow_consumer_conflated_total"])
    assert m["tickgate_slow_consumer_conflated_total"] == 0, m
    assert m["tickgate_shed_ticks_total"] == 0, m


def test_slow_consumer_disconnect_1013(tickgate, jclients):
    gw = start(tickgate, "disconnect")
    slow = subscribe_slow(jclients, gw)
    other = jclients.open(gw)  # reads promptly: unaffected
    other.subscribe(["AAPL"])
    pub = Publisher(jclients.publisher(gw))
    other_seqs = []
    # Publish until the server gives up on the slow client (bounded).
    while True:
        pub.burst()
        while not other_seqs or other_seqs[-1] < pub.sent:
            other_seqs.append(other.recv(timeout=5)["seq"])
        if get_metrics(gw)["tickgate_slow_consumer_disconnects_total"] >= 1:
            break
        assert pub.sent < MAX_TICKS, "no slow-consumer disconnect after %d ticks" % pub.sent
    # Read what was queued before the close: strictly increasing seqs, then 1013.
    seqs = []
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "no close frame within 10 s"
        try:
            f = slow.raw.recv_frame(timeout=max(0.1, deadline - time.monotonic()))
        except PeerClosed as e:
            raise AssertionError("server closed TCP without a 1013 close frame (%s); %d updates read"
                                 % (e, len(seqs))) from None
        if f.opcode == OP_TEXT:
            m = json.loads(f.payload)
            assert m["type"] == "price_update", m
            seqs.append(m["seq"])
        elif f.opcode == OP_CLOSE:
            code = int.from_bytes(f.payload[:2], "big") if len(f.payload) >= 2 else None
            assert code == 1013, "expected close 1013, got %r" % f.payload
            break
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs[:50]
    assert seqs and seqs[-1] < pub.sent, "the slow client was not behind"
    slow.raw.send_close(1013)
    slow.raw.wait_closed(timeout=5)
    m = wait_metrics(gw, lambda m: m['tickgate_disconnections_total{reason="slow_consumer"}'] == 1, timeout=10,
                     what="disconnection counted as slow_consumer")
    assert m["tickgate_slow_consumer_disconnects_total"] == 1, m
    assert m["tickgate_slow_consumer_conflated_total"] == 0, m
    assert m["tickgate_subscriptions"] == 1, m  # the other client's
    assert other_seqs == list(range(1, pub.sent + 1)), "the reading client missed ticks"
    # The publisher and new subscribers are unaffected.
    again = jclients.open(gw)
    again.subscribe(["AAPL"])
    pub.ws.publish([{"symbol": "AAPL", "price": 1.5}])
    t = again.recv()
    assert (t["seq"], t["price"]) == (pub.sent + 1, 1.5), t
    assert other.recv()["seq"] == pub.sent + 1


def read_all_until_fence(slow, timeout=30):
    """Reads everything the server has for the client. The first heartbeat is
    answered behind the backlog but before the updates held back by
    conflation (those go out when the queue drains), so a second heartbeat,
    sent once the first is answered, fences those too."""
    msgs = slow.fence(timeout=timeout)
    msgs.append({"type": "fence"})
    return msgs + slow.fence(timeout=timeout)


def test_resubscribe_while_congested_never_goes_back_in_seq(tickgate, jclients):
    """Re-subscribing while backed up sends a fresh snapshot; the update held
    back by conflation is older (or the same tick) and must not follow it."""
    gw = start(tickgate, "conflate")
    slow = subscribe_slow(jclients, gw)
    pub = Publisher(jclients.publisher(gw))
    pub.until(gw, "tickgate_slow_consumer_conflated_total")
    pub.burst()
    slow.send({"type": "subscribe", "symbols": ["AAPL"], "id": "again"})
    # The client does not read, so learn from the server's side when the
    # re-subscribe (and with it the snapshot) has been handled.
    wait_metrics(gw, lambda m: m['tickgate_messages_received_total{type="subscribe"}'] == 2, timeout=10,
                 what="the second subscribe handled")
    msgs = read_all_until_fence(slow)
    ticks = [m for m in msgs if m["type"] == "price_update"]
    i = next((k for k, m in enumerate(msgs) if m["type"] == "subscription_confirmed"), None)
    assert i is not None, "no subscription_confirmed among %d messages" % len(msgs)
    after = [m for m in msgs[i + 1:] if m["type"] == "price_update"]
    assert after and after[0].get("snapshot") is True, after[:3]
    snap = after[0]
    assert snap["seq"] == pub.sent, snap
    stale = [m for m in after[1:] if m["seq"] <= snap["seq"]]
    assert not stale, "after the snapshot (seq %d) the client got older/duplicate updates: %r" \
        % (snap["seq"], stale[:3])
    plain = [m["seq"] for m in ticks if "snapshot" not in m]
    assert all(a < b for a, b in zip(plain, plain[1:])), plain[-20:]


def test_unsubscribe_while_congested_drops_held_update(tickgate, jclients):
    gw = start(tickgate, "conflate")
    slow = subscribe_slow(jclients, gw)
    pub = Publisher(jclients.publisher(gw))
    pub.until(gw, "tickgate_slow_consumer_conflated_total")
    pub.burst()
    slow.send({"type": "unsubscribe", "symbols": ["AAPL"], "id": "bye"})
    wait_metrics(gw, lambda m: m["tickgate_subscriptions"] == 0, timeout=10, what="the unsubscribe handled")
    pub.burst()  # and more after it
    msgs = read_all_until_fence(slow)
    i = next((k for k, m in enumerate(msgs) if m["type"] == "unsubscription_confirmed"), None)
    assert i is not None and msgs[i]["id"] == "bye", msgs[-3:]
    assert [m for m in msgs[i + 1:] if m["type"] == "price_update"] == [], msgs[i + 1:i + 4]
    seqs = [m["seq"] for m in msgs[:i] if m["type"] == "price_update"]
    assert all(a < b for a, b in zip(seqs, seqs[1:]))
    assert get_stats(gw)["active_streams"] == 0


def test_worker_behind_sheds_superseded_ticks(tickgate, jclients):
    """Saturation (limits.shed_after_ms): a worker that falls behind skips a
    tick whose symbol already has a newer one queued, instead of delivering
    an ever older backlog. With the bound at 1 ms, bursts of 1000 ticks to
    20 readers on one worker put it behind within a burst. Every reader
    still sees strictly increasing seqs, every price true to its seq, the
    newest tick of each burst, and exactly the ticks not shed: the skip is
    per tick for the whole worker, never per client (nothing is conflated
    per client, nothing dropped elsewhere)."""
    n_readers = 20
    gw = tickgate("--server.workers=1", "--limits.shed_after_ms=1", "--limits.max_messages_per_minute=100000",
                  "--limits.max_connections_per_ip=100")
    readers = [jclients.open(gw) for _ in range(n_readers)]
    for r in readers:
        r.subscribe(["AAPL"])
    pub = Publisher(jclients.publisher(gw))
    got = [[] for _ in readers]
    for _ in range(20):  # bounded: a burst of 1000 takes the worker past 1 ms
        pub.burst(1000)
        for r, seen in zip(readers, got):
            while not seen or seen[-1]["seq"] < pub.sent:
                m = r.recv(timeout=10)
                assert m["type"] == "price_update" and m["symbol"] == "AAPL", m
                seen.append(m)
        if get_metrics(gw)["tickgate_shed_ticks_total"] > 0:
            break
    m = get_metrics(gw)
    shed = m["tickgate_shed_ticks_total"]
    assert shed > 0, "a worker 1 ms behind never shed a tick in %d ticks" % pub.sent
    assert m["tickgate_slow_consumer_conflated_total"] == 0 and m["tickgate_fanout_dropped_total"] == 0, m
    for seen in got:
        seqs = [t["seq"] for t in seen]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), "seqs not strictly increasing: %s" % seqs[:50]
        assert seqs[-1] == pub.sent, "the newest tick of the last burst did not arrive"
        assert len(seqs) == pub.sent - shed, "%d ticks read of %d published, %d shed" % (len(seqs), pub.sent, shed)
        for t in seen:
            assert t["price"] == price_of(t["seq"]) and t["volume"] == t["seq"], t
    assert get_stats(gw)["shed_ticks_total"] == shed
    print("%d of %d ticks shed" % (shed, pub.sent))
