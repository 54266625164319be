"""permessage-deflate (RFC 7692): negotiation, compressed-once fan-out,
per-message minimum, inbound inflate and its bounds, the echo endpoint.

Real clients: Python websockets (offers permessage-deflate by default) and
the raw client of wsraw.py, which shows the RSV1 bit of every frame."""
import asyncio
import json
import subprocess
import zlib

import pytest
import websockets

import wsraw
from conftest import child_env, get_metrics, mint, tickgate_bin

EXT = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}


def deflate(data):
    """A permessage-deflate payload as a client sends it: raw DEFLATE, sync
    flush, the 00 00 ff ff tail removed (RFC 7692 7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload):
    d = zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


def recv_msg(raw, timeout=wsraw.DEFAULT_TIMEOUT):
    """The next data frame of a raw client that negotiated deflate:
    (rsv1, decoded text); pings are skipped."""
    while True:
        f = raw.recv_frame(timeout)
        if f.opcode in (wsraw.OP_PING, wsraw.OP_PONG):
            continue
        assert f.opcode in (wsraw.OP_TEXT, wsraw.OP_BINARY), f
        rsv1 = raw.last_rsv == 4
        return rsv1, (inflate(f.payload) if rsv1 else f.payload)


def open_deflate(clients, gw, path="/echo", offer=OFFER, headers=None):
    h = dict(offer)
    h.update(headers or {})
    raw = clients.ws(gw, path, h)
    raw.rsv1_ok = True
    return raw


def counters(gw):
    m = get_metrics(gw)
    return (m["tickgate_ws_compressions_total"], m["tickgate_ws_compressed_messages_total"],
            m["tickgate_ws_compression_saved_bytes_total"])


def uri(gw, path="/ws"):
    return "ws://%s:%d%s" % (gw.host, gw.port, path)


# ---------------------------------------------------------------------------
# negotiation
# ---------------------------------------------------------------------------

def test_websockets_client_negotiates_and_gets_the_answer(tickgate):
    gw = tickgate()

    async def main():
        async with websockets.connect(uri(gw), ping_interval=None) as ws:
            assert ws.response_headers["Sec-WebSocket-Extensions"] == EXT
            hello = json.loads(await ws.recv())
            assert hello["type"] == "connected", hello
            # A reply the client compresses and the server inflates.
            await ws.send(json.dumps({"type": "heartbeat", "id": "x" * 64}))
            ack = json.loads(await ws.recv())
            assert ack["type"] == "heartbeat_ack" and ack["id"] == "x" * 64, ack

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize("offer,answer", [
    ("permessage-deflate", EXT),
    ("permessage-deflate; server_max_window_bits=15", EXT + "; server_max_window_bits=15"),
    ('permessage-deflate; server_max_window_bits="15"', EXT + "; server_max_window_bits=15"),
    ("permessage-deflate; client_max_window_bits=9; server_no_context_takeover", EXT),
    ("permessage-deflate; server_max_window_bits=10", None),               # cannot honour: declined
    ("permessage-deflate; server_max_window_bits=10, permessage-deflate", EXT),  # the next offer
    ("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", EXT),
    ("permessage-deflate; client_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=015", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; mystery", None),
    ("permessage-deflate; =", None),
])
def test_offers_are_judged_strictly(tickgate, clients, offer, answer):
    gw = tickgate()
    raw = clients.raw(gw)
    r = raw.open("/echo", {"Sec-WebSocket-Extensions": offer})
    assert r.headers.get("sec-websocket-extensions") == answer, (offer, r.headers)


def test_compression_off_answers_no_extension(tickgate):
    gw = tickgate("--ws.compression=off")

    async def main():
        async with websockets.connect(uri(gw), ping_interval=None) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            assert json.loads(await ws.recv())["type"] == "connected"

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize("flag", ["--ws.compression=maybe", "--ws.compression_min_bytes=-1"])
def test_bad_compression_config_is_refused(flag):
    p = subprocess.run([tickgate_bin(), flag], stdin=subprocess.DEVNULL, capture_output=True,
                       env=child_env(), timeout=10)
    assert p.returncode != 0 and flag[2:].split("=")[0].encode() in p.stderr, p


# ---------------------------------------------------------------------------
# outbound: compressed once, shared, minimum size
# ---------------------------------------------------------------------------

def test_two_subscribers_one_compression_per_tick(tickgate):
    gw = tickgate("--server.workers=2", "--ws.compression_min_bytes=64")
    n_ticks = 5

    async def main():
        subs = [await websockets.connect(uri(gw), ping_interval=None) for _ in range(2)]
        pub = await websockets.connect(uri(gw), ping_interval=None, compression=None,
                                       extra_headers={"Authorization": "Bearer " + mint("feed", "publisher")})
        try:
            for ws in subs + [pub]:
                assert json.loads(await ws.recv())["type"] == "connected"
            for ws in subs:
                assert ws.response_headers["Sec-WebSocket-Extensions"] == EXT
                await ws.send('{"type":"subscribe","symbols":["AAPL"]}')
                assert json.loads(await ws.recv())["type"] == "subscription_confirmed"
                assert json.loads(await ws.recv())["snapshot"] is True
            runs0, msgs0, saved0 = counters(gw)
            for k in range(1, n_ticks + 1):
                await pub.send(json.dumps({"type": "publish", "updates": [{"symbol": "AAPL", "price": 190 + k}]}))
                assert json.loads(await pub.recv())["type"] == "published"
                for ws in subs:
                    m = json.loads(await ws.recv())
                    assert m["type"] == "price_update" and m["seq"] == k, m
            runs1, msgs1, saved1 = counters(gw)
            assert runs1 - runs0 == n_ticks, (runs0, runs1)
            assert msgs1 - msgs0 == 2 * n_ticks, (msgs0, msgs1)
            assert saved1 > saved0
        finally:
            for ws in subs + [pub]:
                await ws.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_small_messages_go_plain_large_ones_compressed(tickgate, clients):
    gw = tickgate()
    raw = open_deflate(clients, gw)
    raw.send_text("hi")
    assert recv_msg(raw) == (False, b"hi")
    big = json.dumps({"k": ["value-%d" % i for i in range(100)]}).encode()
    raw.send_text(big)
    assert recv_msg(raw) == (True, big)
    exact = b"a" * 255  # below ws.compression_min_bytes (256)
    raw.send_text(exact)
    assert recv_msg(raw) == (False, exact)


def test_tick_frames_below_the_minimum_have_rsv1_clear(tickgate, clients, jclients):
    gw = tickgate()
    raw = open_deflate(clients, gw, "/ws", headers={"Authorization": "Bearer " + mint("v1", "viewer")})
    rsv1, hello = recv_msg(raw)
    assert json.loads(hello)["type"] == "connected"
    raw.send_text('{"type":"subscribe","symbols":["AAPL"]}')
    assert json.loads(recv_msg(raw)[1])["type"] == "subscription_confirmed"
    assert json.loads(recv_msg(raw)[1])["snapshot"] is True
    pub = jclients.publisher(gw)
    pub.publish([{"symbol": "AAPL", "price": 191.5}])
    rsv1, tick = recv_msg(raw)
    assert json.loads(tick)["price"] == 191.5 and len(tick) < 256
    assert not rsv1
    # get_history of many ticks is large: compressed.
    for i in range(30):
        pub.publish([{"symbol": "AAPL", "price": 192 + i / 10}])
    for i in range(30):
        recv_msg(raw)
    raw.send_text('{"type":"get_history","symbol":"AAPL","limit":100}')
    rsv1, hist = recv_msg(raw)
    assert rsv1 and json.loads(hist)["type"] == "history", hist[:200]


def test_batch_of_ticks_is_compressed(tickgate, clients, jclients):
    # Ticks above the minimum get a shared compressed sibling: a batching
    # subscriber must still batch their plain JSON.
    gw = tickgate("--ws.compression_min_bytes=64")
    raw = open_deflate(clients, gw, "/ws", headers={"Authorization": "Bearer " + mint("v1", "viewer")})
    recv_msg(raw)
    raw.send_text('{"type":"set_options","batch_ms":50}')
    assert json.loads(recv_msg(raw)[1])["type"] == "options_set"
    syms = ["AAPL", "MSFT", "GOOGL", "AMZN"]
    raw.send_text(json.dumps({"type": "subscribe", "symbols": syms}))
    assert json.loads(recv_msg(raw)[1])["type"] == "subscription_confirmed"
    for _ in syms:
        assert json.loads(recv_msg(raw)[1])["snapshot"] is True
    pub = jclients.publisher(gw)
    pub.publish([{"symbol": s, "price": 100 + i} for i, s in enumerate(syms)])
    got = 0
    while got < len(syms):
        rsv1, m = recv_msg(raw)
        m = json.loads(m)
        assert m["type"] == "price_batch", m
        if len(json.dumps(m["updates"])) >= 256:
            assert rsv1
        got += len(m["updates"])


# ---------------------------------------------------------------------------
# inbound
# ---------------------------------------------------------------------------

def test_echo_endpoint_with_websockets_deflate(tickgate):
    gw = tickgate()

    async def main():
        async with websockets.connect(uri(gw, "/echo"), ping_interval=None, max_size=None) as ws:
            assert ws.response_headers["Sec-WebSocket-Extensions"] == EXT
            for msg in ["small", "x" * 5000, json.dumps(list(range(2000))), b"\x00\x01" * 3000]:
                await ws.send(msg)
                assert await ws.recv() == msg

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize("cont_rsv", [0, 4])
def test_fragmented_compressed_message(tickgate, clients, cont_rsv):
    """RSV1 on the first frame only (RFC 7692 6.1); on a continuation: 1002."""
    gw = tickgate()
    raw = open_deflate(clients, gw)
    text = ("fragmented " * 100).encode()
    z = deflate(text)
    raw.send_frame(wsraw.OP_TEXT, z[:10], fin=False, rsv=4)
    raw.send_frame(wsraw.OP_CONT, z[10:], fin=True, rsv=cont_rsv)
    if cont_rsv:
        raw.expect_close(1002)
    else:
        assert recv_msg(raw) == (True, text)


def test_inflated_size_at_the_limit_is_accepted(tickgate, clients):
    gw = tickgate("--limits.max_message_bytes=4096")
    raw = open_deflate(clients, gw)
    raw.send_frame(wsraw.OP_BINARY, deflate(b"b" * 4096), rsv=4)
    rsv1, got = recv_msg(raw)
    assert got == b"b" * 4096
    raw.send_frame(wsraw.OP_BINARY, deflate(b"b" * 4097), rsv=4)
    raw.expect_close(1009)


@pytest.mark.parametrize("case,negotiate,opcode,payload,code", [
    ("inflate bomb", True, wsraw.OP_TEXT, deflate(b"a" * (1 << 20)), 1009),  # 1 MiB from ~1 KiB; cap 64 KiB
    ("corrupt deflate", True, wsraw.OP_TEXT, b"\xff\xfe\xfd\xfc\xfb", 1007),
    ("compressed invalid UTF-8", True, wsraw.OP_TEXT, deflate(b"ok \xc3\x28 not utf-8"), 1007),
    ("RSV1 without negotiation", False, wsraw.OP_TEXT, deflate(b"hello"), 1002),
    ("RSV1 on a control frame", True, wsraw.OP_PING, b"", 1002),
])
def test_bad_compressed_input_closes(tickgate, clients, case, negotiate, opcode, payload, code):
    gw = tickgate()
    raw = open_deflate(clients, gw) if negotiate else clients.ws(gw, "/echo")
    raw.send_frame(opcode, payload, rsv=4)
    raw.expect_close(code)


def test_conflation_works_on_compressed_ticks(tickgate, jclients):
    """A slow deflate client: its queue holds the shared compressed ticks,
    conflated per symbol like plain ones (kind, symbol and seq travel with
    the compressed block)."""
    from conftest import SmallRcvBufWS
    from test_slow_consumer import Publisher, price_of, start

    gw = start(tickgate, "conflate", "--ws.compression_min_bytes=64")
    raw = SmallRcvBufWS(gw.host, gw.port, 4096)
    try:
        raw.open("/ws", OFFER)
        raw.rsv1_ok = True
        assert json.loads(recv_msg(raw)[1])["type"] == "connected"
        raw.send_text('{"type":"subscribe","symbols":["AAPL"]}')
        assert json.loads(recv_msg(raw)[1])["type"] == "subscription_confirmed"
        assert json.loads(recv_msg(raw)[1])["snapshot"] is True
        pub = Publisher(jclients.publisher(gw))
        pub.until(gw, "tickgate_slow_consumer_conflated_total")
        pub.burst()
        seqs = []
        while True:
            rsv1, m = recv_msg(raw, timeout=30)
            m = json.loads(m)
            assert rsv1 and m["type"] == "price_update" and m["price"] == price_of(m["seq"]), m
            seqs.append(m["seq"])
            if m["seq"] == pub.sent:
                break
        assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs[:50]
        assert len(seqs) < pub.sent, "nothing was conflated"
    finally:
        raw.close()
