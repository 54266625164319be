"""The Python client (clients/python, import name tickgate) against real
tickgate processes: the stream, typed errors, requests, and a node killed
and restarted under a steady publisher (Redis on, two nodes) with every seq
yielded exactly once. The first tests need no server: backoff bounds and
jitter, dedupe by seq, error typing, request timeouts.

Every wait awaits an event (an update, a reply, /ready) under a deadline."""
import asyncio
import signal
import os
import sys
import time

import pytest

from conftest import http_json, mint, wait_until
from redis_helpers import Balancer, SteadyPublisher, redis_server, rgw, rws, unmanaged_gw  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))
import tickgate  # noqa: E402
from tickgate.client import _Sub  # noqa: E402

SYM = "AAPL"


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def take_until(it, seqs, pred):
    """Appends the seqs of live updates from it (snapshots skipped) to seqs
    until pred() holds."""
    async for u in it:
        if not u.get("snapshot"):
            seqs.append(u["seq"])
        if pred():
            return


# ---------- without a server ----------

def test_backoff_is_exponential_with_full_jitter_and_capped():
    b = tickgate.Backoff(initial_s=0.5, max_s=30.0, factor=2.0)
    assert [b.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.ceiling(10_000) == 30.0
    assert b.delay(3, random=lambda: 0.0) == 0.0           # full jitter: from zero ...
    assert b.delay(3, random=lambda: 0.999) < b.ceiling(3)  # ... to just under the ceiling


def test_updates_are_deduplicated_by_seq_and_a_snapshot_resets():
    async def go():
        c = tickgate.Client("ws://127.0.0.1:1/ws")
        c.subscriptions[SYM] = _Sub(seq=5, epoch="e")
        it = c.updates()
        for seq in (4, 5, 6, 6, 8):
            c._on_update({"type": "price_update", "symbol": SYM, "seq": seq})
        c._on_update({"type": "price_update", "symbol": SYM, "seq": 3, "snapshot": True})
        c._on_update({"type": "price_update", "symbol": SYM, "seq": 4})
        c._on_update({"type": "price_update", "symbol": "MSFT", "seq": 1})  # not subscribed
        got = [(await it.__anext__())["seq"] for _ in range(4)]
        assert got == [6, 8, 3, 4]
        assert c.stats["duplicates"] == 3 and c.stats["gaps"] == 1
    run(go())


def test_a_full_update_queue_drops_the_oldest_and_counts_it():
    async def go():
        c = tickgate.Client("ws://127.0.0.1:1/ws", max_updates=3)
        c.subscriptions[SYM] = _Sub()
        it = c.updates()
        for seq in range(1, 6):
            c._on_update({"type": "price_update", "symbol": SYM, "seq": seq})
        assert [(await it.__anext__())["seq"] for _ in range(3)] == [3, 4, 5]
        assert c.stats["dropped"] == 2
    run(go())


def test_a_request_without_a_connection_times_out():
    async def go():
        c = tickgate.Client("ws://127.0.0.1:1/ws")
        with pytest.raises(tickgate.RequestTimeout) as e:
            await c.get_history(SYM, timeout=0.05)
        assert e.value.code == "timeout" and e.value.request["type"] == "get_history"
    run(go())


def test_subscription_failures_are_typed_by_reason():
    async def go():
        c = tickgate.Client("ws://127.0.0.1:1/ws")
        c.state = "connected"
        c._ws = None  # transmit parks it in the outbox; the replies are fed by hand
        task = asyncio.ensure_future(c.subscribe([SYM, "NOPE", "MSFT"]))
        await asyncio.sleep(0)
        rid = next(iter(c._pending))
        c._on_text('{"type":"subscription_confirmed","symbols":["AAPL","MSFT"],"epochs":{"AAPL":"e","MSFT":"e"},"id":%d}' % rid)
        c._on_text('{"type":"subscription_failed","symbols":["NOPE"],"reason":"unknown_symbol","id":%d}' % rid)
        with pytest.raises(tickgate.UnknownSymbol) as e:
            await task
        assert e.value.reason == "unknown_symbol" and e.value.symbols == ["NOPE"]
        assert e.value.confirmed["symbols"] == [SYM, "MSFT"]
        assert set(c.subscriptions) == {SYM, "MSFT"}  # the confirmed ones stay
    run(go())


# ---------- against tickgate ----------

def test_stream_requests_and_typed_errors(redis_server, rgw, rws):
    gw = rgw(redis_server)
    pub = rws.open(gw, token=mint("feed", "publisher"))

    async def go():
        async with tickgate.connect(gw.url + "/ws", token=mint("ann", "viewer")) as c:
            assert c.session["type"] == "connected" and c.state == "connected"
            conf = await c.subscribe([SYM])
            assert conf["symbols"] == [SYM] and conf["epochs"][SYM]
            with pytest.raises(tickgate.UnknownSymbol):
                await c.subscribe(["ZZZZ9"])
            assert list(c.subscriptions) == [SYM]
            with pytest.raises(tickgate.Forbidden):   # a viewer may not publish
                await c.publish([{"symbol": SYM, "price": 1.0}])
            it = c.updates()
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: pub.publish([{"symbol": SYM, "price": 190 + i / 100} for i in range(5)]))
            got = []
            await take_until(it, got, lambda: len(got) == 5)
            assert got == list(range(got[0], got[0] + 5))
            hist = await c.get_history(SYM, limit=5)
            assert hist["type"] == "history" and len(hist["updates"]) == 5
            assert (await c.heartbeat())["type"] == "heartbeat_ack"
        assert c.state == "closed"
    run(go())


def two_nodes(redis_server, rgw, unmanaged_gw, rws, *flags):
    """Node B (a steady publisher of SYM on it, not started) and node A,
    which a balancer names: (a, b, lb, pub)."""
    b = rgw(redis_server, *flags)
    a = unmanaged_gw(redis_server, *flags)
    lb = Balancer()
    lb.backend = a.port
    return a, b, lb, SteadyPublisher(rws.open(b, token=mint("feed", "publisher")), SYM, 0.005)


async def streaming(lb, events, pub):
    """A client of the balancer (short backoff, its events listed in
    events) subscribed to SYM, with pub started: (client, its updates)."""
    c = tickgate.Client("ws://127.0.0.1:%d/ws" % lb.port, token=mint("py", "viewer"),
                        backoff=tickgate.Backoff(initial_s=0.05, max_s=0.5),
                        on_event=lambda name, info: events.append((name, info)))
    await c.connect()
    await c.subscribe([SYM])
    it = c.updates()
    pub.start()
    return c, it


def test_node_killed_and_restarted_every_seq_exactly_once(redis_server, rgw, unmanaged_gw, rws):
    """Node B takes a steady publisher; the client reaches node A through a
    balancer that, like a real one, passes connections only while A is
    ready. A is SIGKILLed and restarted on its port; the updates iterator
    goes on across the reconnect and yields every seq once, in order."""
    flags = ("--feed.history_size=5000",)
    a, b, lb, pub = two_nodes(redis_server, rgw, unmanaged_gw, rws, *flags)
    events = []

    async def go():
        nonlocal a
        loop = asyncio.get_running_loop()
        c, it = await streaming(lb, events, pub)
        seqs = []
        await take_until(it, seqs, lambda: len(seqs) >= 20)
        lb.backend = None
        a.kill()
        before = seqs[-1]
        await loop.run_in_executor(None, lambda: wait_until(lambda: pub.count >= before + 100, 10,
                                                            "100 ticks published while A is down"))

        def restart():
            gw = unmanaged_gw(redis_server, *flags, "--server.listen=127.0.0.1:%d" % a.port)
            wait_until(lambda: http_json(gw, "GET", "/ready").status == 200, 10, "A ready")
            return gw
        a = await loop.run_in_executor(None, restart)
        lb.backend = a.port
        back, live_at_restart = time.monotonic(), pub.count
        await take_until(it, seqs, lambda: seqs[-1] > live_at_restart)
        first_live = time.monotonic() - back
        await take_until(it, seqs, lambda: seqs[-1] >= live_at_restart + 20)
        pub.stop()
        await c.close()
        return seqs, before, live_at_restart, first_live, c.stats

    try:
        seqs, before, live_at_restart, first_live, stats = run(go(), 60)
    finally:
        pub.stop()
        lb.close()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate"
    assert seqs[0] <= before < live_at_restart < seqs[-1]
    assert stats["connects"] == 2 and stats["recovered"] == 1 and stats["missed"] == 0, stats
    assert stats["gaps"] == 0 and stats["dropped"] == 0, stats
    assert any(n == "recovered" and info["recovered"] == [SYM] for n, info in events)
    print("\npython client: first tick past the restart %.0f ms after the restarted node took connections; "
          "%d ticks replayed (seq %d..%d); %d seqs, none twice, no gap; %d duplicates dropped"
          % (first_live * 1000, live_at_restart - before, before + 1, live_at_restart, len(seqs),
             stats["duplicates"]))


def test_clients_are_versioned_with_the_server():
    import json
    import subprocess
    from conftest import tickgate_bin
    out = subprocess.run([tickgate_bin(), "--version"], capture_output=True, text=True, timeout=10).stdout
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(root, "clients", "js", "package.json")) as f:
        js = json.load(f)["version"]
    with open(os.path.join(root, "clients", "python", "pyproject.toml")) as f:
        py = [ln.split('"')[1] for ln in f if ln.startswith("version")][0]
    assert tickgate.__version__ == py == js and py in out, (out, js, py, tickgate.__version__)


def test_token_refreshed_on_token_expiring_and_entitlements_typed(redis_server, rgw):
    """A token with under 60 s left is warned at once: the provider's fresh
    token goes out in `authenticate`, and is the one used from then on. A
    symbol the token is not entitled to fails with NotEntitled."""
    gw = rgw(redis_server)
    fresh = mint("tok", "viewer", symbols=["AAPL"])
    calls = []

    def provider():
        calls.append(1)
        return fresh

    async def go():
        events = []
        c = tickgate.Client(gw.url + "/ws", token=mint("tok", "viewer", ttl=30, symbols=["AAPL"]),
                            token_provider=provider, on_event=lambda n, i: events.append(n))
        await c.connect()
        deadline = time.monotonic() + 10
        while c._token != fresh:  # the refresh runs off the server's token_expiring
            assert time.monotonic() < deadline, "no refresh within 10 s"
            await asyncio.sleep(0.01)
        assert "token_expiring" in events and "error" not in events
        assert (await c.heartbeat())["type"] == "heartbeat_ack"
        with pytest.raises(tickgate.NotEntitled) as e:
            await c.subscribe(["MSFT"])
        assert e.value.symbols == ["MSFT"]
        await c.close()
    run(go())
    assert len(calls) == 1


def test_drain_advisory_moves_the_client_to_another_node_without_a_gap(redis_server, rgw, unmanaged_gw, rws):
    """Node A drains (SIGTERM): the client gets {"type":"reconnect"}, leaves
    at after_ms, and comes back through the balancer, which now names node
    B (A's /ready is 503), where it recovers: every seq once."""
    a, b, lb, pub = two_nodes(redis_server, rgw, unmanaged_gw, rws, "--feed.history_size=5000",
                              "--server.shutdown_grace_ms=2000")
    events = []

    async def go():
        c, it = await streaming(lb, events, pub)
        seqs = []
        await take_until(it, seqs, lambda: len(seqs) == 20)
        lb.backend = b.port
        a.send_signal(signal.SIGTERM)
        async for u in it:
            seqs.append(u["seq"])
            if c.stats["connects"] == 2 and u["seq"] >= pub.count - 1 and len(seqs) > 60:
                break
        pub.stop()
        await c.close()
        return seqs, c.stats

    try:
        seqs, stats = run(go(), 60)
    finally:
        pub.stop()
        lb.close()
    assert "reconnect" in [n for n, _ in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate"
    assert stats["connects"] == 2 and stats["recovered"] == 1 and stats["missed"] == 0, stats
