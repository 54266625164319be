"""RFC 6455 conformance of the echo endpoint, in the manner of the
Autobahn|Testsuite categories, over raw sockets so that invalid frames can
be sent. Each case runs against its own gateway, whose clean SIGTERM exit
(code 0) is checked at teardown too."""
import pytest

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame, close_payload)

PROTOCOL = 1002
UNSUPPORTED = 1003
INVALID_DATA = 1007
TOO_BIG = 1009


@pytest.fixture
def echo(gateway, clients):
    """A WebSocket connection on /echo of a fresh gateway."""
    return clients.ws(gateway(), "/echo")


@pytest.fixture
def limited(gateway, clients):
    """A connection on /echo of a gateway with --limits.max_message_bytes=1024."""
    return clients.ws(gateway("--limits.max_message_bytes=1024"), "/echo")


def pattern(n, text=False):
    if text:
        return (b"abcdefghijklmnopqrstuvwxyz0123456789" * (n // 36 + 1))[:n]
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


# ---------------------------------------------------------------------------
# 1 framing
# ---------------------------------------------------------------------------

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536]


@pytest.mark.parametrize("length", LENGTHS, ids=lambda n: "len%d" % n)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_1_echo_length(echo, opcode, length):
    payload = pattern(length, text=opcode == OP_TEXT)
    echo.send_frame(opcode, payload)
    echo.expect_frame(opcode, payload, timeout=10)


@pytest.mark.parametrize("length", [0, 5, 125, 126, 300], ids=lambda n: "len%d" % n)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_1_byte_by_byte(echo, opcode, length):
    payload = pattern(length, text=opcode == OP_TEXT)
    echo.send_frame(opcode, payload, chunk=1)
    echo.expect_frame(opcode, payload)


def test_1_large_frame_in_odd_chunks(echo):
    payload = pattern(65536)
    echo.send_frame(OP_BINARY, payload, chunk=997)
    echo.expect_frame(OP_BINARY, payload, timeout=10)


def test_1_several_frames_in_one_write(echo):
    msgs = [(OP_TEXT, b"first"), (OP_BINARY, b"\x00\x01\x02"), (OP_TEXT, b""), (OP_TEXT, pattern(300, True))]
    echo.send(b"".join(build_frame(op, p) for op, p in msgs))
    for op, p in msgs:
        echo.expect_frame(op, p)


def test_1_sequential_messages(echo):
    for i in range(20):
        msg = ("message %d" % i).encode()
        echo.send_frame(OP_TEXT, msg)
        echo.expect_frame(OP_TEXT, msg)


# ---------------------------------------------------------------------------
# 2 ping / pong
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"hello", pattern(125)], ids=["empty", "text5", "binary125"])
def test_2_ping_answered_with_pong(echo, payload):
    echo.send_frame(OP_PING, payload)
    echo.expect_frame(OP_PONG, payload)


def test_2_ping_byte_by_byte(echo):
    echo.send_frame(OP_PING, b"slow ping", chunk=1)
    echo.expect_frame(OP_PONG, b"slow ping")


def test_2_ping_126_bytes_is_protocol_error(echo):
    echo.send_frame(OP_PING, pattern(126))
    echo.expect_close(PROTOCOL, allow_data=False)


def test_2_several_pings_answered_in_order(echo):
    payloads = [("ping-%d" % i).encode() for i in range(10)]
    echo.send(b"".join(build_frame(OP_PING, p) for p in payloads))
    for p in payloads:
        echo.expect_frame(OP_PONG, p)


@pytest.mark.parametrize("payload", [b"", b"unsolicited"], ids=["empty", "payload"])
def test_2_unsolicited_pong_ignored(echo, payload):
    echo.send_frame(OP_PONG, payload)
    echo.send_frame(OP_TEXT, b"after pong")
    echo.expect_frame(OP_TEXT, b"after pong")


def test_2_ping_without_fin_is_protocol_error(echo):
    echo.send_frame(OP_PING, b"frag", fin=False)
    echo.expect_close(PROTOCOL, allow_data=False)


# ---------------------------------------------------------------------------
# 3 reserved bits
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rsv", [4, 2, 1, 7], ids=["RSV1", "RSV2", "RSV3", "RSV123"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING], ids=["text", "binary", "ping"])
def test_3_reserved_bits(echo, opcode, rsv):
    echo.send_frame(opcode, b"rsv", rsv=rsv)
    echo.expect_close(PROTOCOL, allow_data=False)


def test_3_reserved_bit_after_valid_message(echo):
    echo.send_frame(OP_TEXT, b"fine")
    echo.expect_frame(OP_TEXT, b"fine")
    echo.send_frame(OP_TEXT, b"not fine", rsv=4)
    echo.expect_close(PROTOCOL, allow_data=False)


# ---------------------------------------------------------------------------
# 4 opcodes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF], ids=lambda o: "op0x%X" % o)
@pytest.mark.parametrize("payload", [b"", b"reserved"], ids=["empty", "payload"])
def test_4_reserved_opcode(echo, opcode, payload):
    echo.send_frame(opcode, payload)
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("opcode", [3, 0xB], ids=lambda o: "op0x%X" % o)
def test_4_reserved_opcode_after_valid_message(echo, opcode):
    echo.send_frame(OP_TEXT, b"hello")
    echo.expect_frame(OP_TEXT, b"hello")
    echo.send_frame(opcode, b"")
    echo.expect_close(PROTOCOL, allow_data=False)


# ---------------------------------------------------------------------------
# 5 fragmentation
# ---------------------------------------------------------------------------

def split(data, n):
    """Splits data into n pieces (some may be empty when data is short)."""
    size = max(1, -(-len(data) // n))
    parts = [data[i * size:(i + 1) * size] for i in range(n)]
    return parts


def send_fragments(ws, opcode, parts):
    for i, part in enumerate(parts):
        ws.send_frame(opcode if i == 0 else OP_CONT, part, fin=i == len(parts) - 1)


@pytest.mark.parametrize("n", [2, 3, 10, 100], ids=lambda n: "%dfrags" % n)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_5_fragmented_message_reassembled(echo, opcode, n):
    payload = pattern(1000, text=opcode == OP_TEXT)
    send_fragments(echo, opcode, split(payload, n))
    echo.expect_frame(opcode, payload)


def test_5_fragments_in_one_write(echo):
    parts = [b"one ", b"two ", b"three"]
    echo.send(build_frame(OP_TEXT, parts[0], fin=False) + build_frame(OP_CONT, parts[1], fin=False)
              + build_frame(OP_CONT, parts[2], fin=True))
    echo.expect_frame(OP_TEXT, b"one two three")


def test_5_fragments_byte_by_byte(echo):
    data = build_frame(OP_TEXT, b"Hel", fin=False) + build_frame(OP_CONT, b"lo", fin=True)
    echo.send(data, chunk=1)
    echo.expect_frame(OP_TEXT, b"Hello")


def test_5_ping_between_fragments_answered_immediately(echo):
    echo.send_frame(OP_TEXT, b"frag1 ", fin=False)
    echo.send_frame(OP_PING, b"p1")
    # The pong must come while the message is still incomplete.
    echo.expect_frame(OP_PONG, b"p1")
    echo.send_frame(OP_CONT, b"frag2 ", fin=False)
    echo.send_frame(OP_PING, b"p2")
    echo.expect_frame(OP_PONG, b"p2")
    echo.send_frame(OP_CONT, b"frag3", fin=True)
    echo.expect_frame(OP_TEXT, b"frag1 frag2 frag3")


def test_5_pings_between_fragments_in_one_write(echo):
    data = (build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_PING, b"p1")
            + build_frame(OP_CONT, b"b", fin=False) + build_frame(OP_PING, b"p2")
            + build_frame(OP_PING, b"p3") + build_frame(OP_CONT, b"c", fin=True))
    echo.send(data)
    echo.expect_frame(OP_PONG, b"p1")
    echo.expect_frame(OP_PONG, b"p2")
    echo.expect_frame(OP_PONG, b"p3")
    echo.expect_frame(OP_TEXT, b"abc")


def test_5_pong_between_fragments_ignored(echo):
    echo.send_frame(OP_BINARY, b"\x01", fin=False)
    echo.send_frame(OP_PONG, b"unsolicited")
    echo.send_frame(OP_CONT, b"\x02", fin=True)
    echo.expect_frame(OP_BINARY, b"\x01\x02")


@pytest.mark.parametrize("fin", [True, False], ids=["fin1", "fin0"])
def test_5_continuation_without_message(echo, fin):
    echo.send_frame(OP_CONT, b"orphan", fin=fin)
    echo.expect_close(PROTOCOL, allow_data=False)


def test_5_continuation_after_complete_message(echo):
    echo.send_frame(OP_TEXT, b"done")
    echo.expect_frame(OP_TEXT, b"done")
    echo.send_frame(OP_CONT, b"late", fin=True)
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("second_fin", [True, False], ids=["fin1", "fin0"])
@pytest.mark.parametrize("first,second", [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT),
                                          (OP_BINARY, OP_BINARY)],
                         ids=["text-text", "text-binary", "binary-text", "binary-binary"])
def test_5_new_message_during_fragmented_message(echo, first, second, second_fin):
    echo.send_frame(first, b"start", fin=False)
    echo.send_frame(second, b"intruder", fin=second_fin)
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_5_fragmented_control_frame(echo, opcode):
    payload = close_payload(1000) if opcode == OP_CLOSE else b"ctl"
    echo.send_frame(opcode, payload, fin=False)
    echo.send_frame(OP_CONT, b"more", fin=True)
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("parts,whole", [
    ([b"", b"", b""], b""),
    ([b"", b"abc"], b"abc"),
    ([b"ab", b"", b"cd"], b"abcd"),
    ([b"abcd", b""], b"abcd"),
], ids=["all-empty", "empty-first", "empty-middle", "empty-last"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_5_empty_fragments(echo, opcode, parts, whole):
    send_fragments(echo, opcode, parts)
    echo.expect_frame(opcode, whole)


# ---------------------------------------------------------------------------
# 6 UTF-8
# ---------------------------------------------------------------------------

VALID_UTF8 = {
    "ascii": b"Hello, world",
    "kosme": "κόσμε".encode(),
    "mixed": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "cjk": "日本語のテキスト".encode(),
    "emoji": "😀 grinning".encode(),
    "U+0080": b"\xc2\x80",
    "U+07FF": b"\xdf\xbf",
    "U+0800": b"\xe0\xa0\x80",
    "U+D7FF": b"\xed\x9f\xbf",
    "U+E000": b"\xee\x80\x80",
    "U+FFFD": b"\xef\xbf\xbd",
    "U+FFFF": b"\xef\xbf\xbf",
    "U+10000": b"\xf0\x90\x80\x80",
    "U+10FFFF": b"\xf4\x8f\xbf\xbf",
    "nul": b"a\x00b",
}

INVALID_UTF8 = {
    "overlong-2byte-slash": b"\xc0\xaf",
    "overlong-C1": b"\xc1\xbf",
    "overlong-3byte": b"\xe0\x80\xaf",
    "overlong-4byte": b"\xf0\x80\x80\xaf",
    "surrogate-D800": b"\xed\xa0\x80",
    "surrogate-DFFF": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10FFFF": b"\xf4\x90\x80\x80",
    "F5": b"\xf5\x80\x80\x80",
    "truncated-2of3-at-end": b"abc\xe2\x82",
    "truncated-1of2-at-end": b"abc\xc3",
    "truncated-3of4-at-end": b"\xf0\x9f\x98",
    "byte-FE": b"ab\xfecd",
    "byte-FF": b"\xff",
    "stray-continuation": b"a\x80b",
    "missing-continuation": b"\xc3(",
    "valid-then-invalid": "κόσμε".encode() + b"\xed\xa0\x80edited",
}


@pytest.mark.parametrize("payload", list(VALID_UTF8.values()), ids=list(VALID_UTF8))
def test_6_valid_utf8_echoed(echo, payload):
    echo.send_frame(OP_TEXT, payload)
    echo.expect_frame(OP_TEXT, payload)


@pytest.mark.parametrize("payload", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
def test_6_invalid_utf8_closes_1007(echo, payload):
    echo.send_frame(OP_TEXT, payload)
    echo.expect_close(INVALID_DATA, allow_data=False)


@pytest.mark.parametrize("payload", [INVALID_UTF8["byte-FE"], INVALID_UTF8["surrogate-D800"]],
                         ids=["byte-FE", "surrogate"])
def test_6_invalid_utf8_in_binary_is_fine(echo, payload):
    echo.send_frame(OP_BINARY, payload)
    echo.expect_frame(OP_BINARY, payload)


VALID_SPLITS = {
    "euro-1|2": [b"\xe2", b"\x82\xac"],
    "euro-2|1": [b"price \xe2\x82", b"\xac 5"],
    "emoji-1|1|2": [b"\xf0", b"\x9f", b"\x98\x80"],
    "emoji-byte-per-fragment": [b"\xf0", b"\x9f", b"\x98", b"\x80"],
    "kosme-per-byte": [bytes([b]) for b in "κόσμε".encode()],
    "U+10FFFF-3|1": [b"\xf4\x8f\xbf", b"\xbf"],
}

INVALID_SPLITS = {
    "E2|28": [b"\xe2", b"(ab"],
    "surrogate-ED|A080": [b"ok \xed", b"\xa0\x80"],
    "above-max-F4|908080": [b"\xf4", b"\x90\x80\x80"],
    "overlong-E0|80AF": [b"\xe0", b"\x80\xaf"],
    "truncated-in-last-fragment": [b"fine ", b"\xe2\x82"],
    "truncated-then-empty-final": [b"\xe2\x82", b""],
    "invalid-in-last-fragment": [b"fine ", b"\xfe"],
}


@pytest.mark.parametrize("parts", list(VALID_SPLITS.values()), ids=list(VALID_SPLITS))
def test_6_code_point_split_across_fragments_valid(echo, parts):
    send_fragments(echo, OP_TEXT, parts)
    echo.expect_frame(OP_TEXT, b"".join(parts))


@pytest.mark.parametrize("parts", list(INVALID_SPLITS.values()), ids=list(INVALID_SPLITS))
def test_6_invalid_utf8_across_fragments(echo, parts):
    send_fragments(echo, OP_TEXT, parts)
    echo.expect_close(INVALID_DATA, allow_data=False)


def test_6_valid_utf8_byte_by_byte_in_one_frame(echo):
    payload = "κόσμε 😀 €".encode()
    echo.send_frame(OP_TEXT, payload, chunk=1)
    echo.expect_frame(OP_TEXT, payload)


FAIL_FAST = {
    "first-fragment-FE": [[b"ok\xfe"]],
    "first-fragment-surrogate": [[b"\xed\xa0\x80"]],
    "first-fragment-above-max": [[b"\xf4\x90\x80\x80"]],
    "second-fragment-overlong": [[b"fine "], [b"\xc0\xaf"]],
    "split-surrogate-in-open-message": [[b"ok \xed"], [b"\xa0"]],
}


@pytest.mark.parametrize("steps", list(FAIL_FAST.values()), ids=list(FAIL_FAST))
def test_6_invalid_utf8_fails_fast(echo, steps):
    """The message never gets its final fragment: the server must close 1007
    as soon as the bytes seen cannot be valid UTF-8."""
    for i, (part,) in enumerate(steps):
        echo.send_frame(OP_TEXT if i == 0 else OP_CONT, part, fin=False)
    echo.expect_close(INVALID_DATA, allow_data=False, timeout=3)


# ---------------------------------------------------------------------------
# 7 close handling
# ---------------------------------------------------------------------------

def test_7_client_close_1000(echo):
    echo.send_close(1000)
    echo.expect_close(1000, allow_data=False)


def test_7_client_close_with_reason(echo):
    echo.send_close(1000, "bye")
    echo.expect_close(1000, allow_data=False)


def test_7_empty_close(echo):
    echo.send_close(None)
    echo.expect_close((1000, None), allow_data=False)


def test_7_close_after_echo(echo):
    echo.send_frame(OP_TEXT, b"hi")
    echo.expect_frame(OP_TEXT, b"hi")
    echo.send_close(1000)
    echo.expect_close(1000, allow_data=False)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES, ids=str)
def test_7_valid_close_code_echoed(echo, code):
    echo.send_close(code)
    echo.expect_close(code, allow_data=False)


@pytest.mark.parametrize("code", INVALID_CODES, ids=str)
def test_7_invalid_close_code(echo, code):
    echo.send_close(code)
    echo.expect_close(PROTOCOL, allow_data=False)


def test_7_one_byte_close_payload(echo):
    echo.send_frame(OP_CLOSE, b"\x03")
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("reason", [b"\xfe", b"\xed\xa0\x80", b"ok\xe2\x82"], ids=["FE", "surrogate", "truncated"])
def test_7_close_reason_invalid_utf8(echo, reason):
    echo.send_frame(OP_CLOSE, close_payload(1000) + reason)
    echo.expect_close(INVALID_DATA, allow_data=False)


def test_7_close_reason_123_bytes(echo):
    reason = ("é" * 61 + "x").encode()
    assert len(reason) == 123
    echo.send_frame(OP_CLOSE, close_payload(1000) + reason)
    echo.expect_close(1000, allow_data=False)


def test_7_close_payload_126_bytes_is_protocol_error(echo):
    echo.send_frame(OP_CLOSE, close_payload(1000) + b"x" * 124)
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("after", [OP_TEXT, OP_BINARY, OP_PING], ids=["text", "binary", "ping"])
def test_7_frames_after_close_not_answered(echo, after):
    echo.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(after, b"too late"))
    echo.sent_close = True
    echo.expect_close(1000, allow_data=False)


def test_7_close_during_fragmented_message(echo):
    echo.send_frame(OP_TEXT, b"unfinished", fin=False)
    echo.send_close(1000)
    echo.expect_close(1000, allow_data=False)


def test_7_close_byte_by_byte(echo):
    echo.send_frame(OP_CLOSE, close_payload(1000, "slow"), chunk=1)
    echo.expect_close(1000, allow_data=False)


# ---------------------------------------------------------------------------
# 8 masking and limits
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE], ids=["text", "binary", "ping", "close"])
def test_8_unmasked_frame(echo, opcode):
    payload = close_payload(1000) if opcode == OP_CLOSE else b"hello"
    echo.send_frame(opcode, payload, mask=False)
    echo.expect_close(PROTOCOL, allow_data=False)


@pytest.mark.parametrize("announced", [1, 125], ids=["len1-as-16bit", "len125-as-64bit"])
def test_8_non_minimal_length_encoding(echo, announced):
    import struct
    b0 = 0x80 | OP_TEXT
    if announced == 1:
        head = struct.pack("!BBH", b0, 0x80 | 126, 1)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, 125)
    echo.send(head + b"\x00\x00\x00\x00" + b"a" * announced)
    echo.expect_close(PROTOCOL, allow_data=False)


def test_8_64bit_length_with_msb_set(echo):
    import struct
    echo.send(struct.pack("!BBQ", 0x80 | OP_BINARY, 0x80 | 127, 1 << 63) + b"\x00\x00\x00\x00")
    echo.expect_close((PROTOCOL, TOO_BIG), allow_data=False)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_8_message_at_limit_echoed(limited, opcode):
    payload = pattern(1024, text=opcode == OP_TEXT)
    limited.send_frame(opcode, payload)
    limited.expect_frame(opcode, payload)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_8_fragmented_message_at_limit_echoed(limited, opcode):
    payload = pattern(1024, text=opcode == OP_TEXT)
    send_fragments(limited, opcode, [payload[:500], payload[500:1000], payload[1000:]])
    limited.expect_frame(opcode, payload)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_8_single_frame_over_limit(limited, opcode):
    limited.send_frame(opcode, pattern(1025, text=opcode == OP_TEXT))
    limited.expect_close(TOO_BIG, allow_data=False)


def test_8_huge_announced_length_closes_promptly(limited):
    """Only the header of a 2**40-byte frame is sent: the server must refuse
    at once, not wait for (or allocate) the payload."""
    limited.send_frame(OP_BINARY, b"", length_override=1 << 40)
    limited.expect_close(TOO_BIG, allow_data=False, timeout=3)


def test_8_huge_announced_length_default_limit(echo):
    echo.send_frame(OP_TEXT, b"", length_override=1 << 40)
    echo.expect_close(TOO_BIG, allow_data=False, timeout=3)


@pytest.mark.parametrize("sizes", [[400, 400, 400], [1024, 1], [1, 1024], [1000, 0, 25]],
                         ids=["400x3", "1024+1", "1+1024", "1000+0+25"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_8_fragments_over_limit(limited, opcode, sizes):
    parts = [pattern(n, text=opcode == OP_TEXT) for n in sizes]
    send_fragments(limited, opcode, parts)
    limited.expect_close(TOO_BIG, allow_data=False)


def test_8_fragments_over_limit_without_final(limited):
    """The running total already exceeds the limit: no need to wait for fin."""
    limited.send_frame(OP_BINARY, pattern(600), fin=False)
    limited.send_frame(OP_CONT, pattern(600), fin=False)
    limited.expect_close(TOO_BIG, allow_data=False, timeout=3)


def test_8_control_frames_do_not_count_towards_limit(limited):
    payload = pattern(1000)
    limited.send_frame(OP_BINARY, payload[:500], fin=False)
    limited.send_frame(OP_PING, pattern(125))
    limited.expect_frame(OP_PONG, pattern(125))
    limited.send_frame(OP_CONT, payload[500:], fin=True)
    limited.expect_frame(OP_BINARY, payload)


# ---------------------------------------------------------------------------
# 9 binary on the JSON endpoint
# ---------------------------------------------------------------------------

def test_9_json_endpoint_connected_then_binary_refused(gateway, clients):
    import json
    ws = clients.ws(gateway(), "/ws")
    f = ws.recv_frame()
    assert f.opcode == OP_TEXT and f.fin, "first frame on /ws should be a text message, got %r" % (f,)
    msg = json.loads(f.payload.decode("utf-8"))
    assert msg.get("type") == "connected", msg
    ws.send_frame(OP_BINARY, b"\x00\x01binary")
    ws.expect_close(UNSUPPORTED)
