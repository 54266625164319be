#!/usr/bin/python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (deterministic).

    /usr/bin/python3 fuzz/make_seeds.py [--rs-key RSA.pem --es-key EC.pem]

Each seed is a realistic input in the target's input format (see the
comment at the top of fuzz/fuzz_<target>.c). RS256/ES256 token seeds need
the private keys that match fuzz/keys/*.pub.pem; they are not in the
repository, so without --rs-key/--es-key those seeds are left as they are
(to renew them, make a new key pair, replace fuzz/keys/ and pass both)."""
import argparse
import base64
import hashlib
import hmac
import json
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")
SECRET = b"tickgate-fuzz-secret-0123456789abcdef0123"
EXP = 4102444800  # 2100-01-01
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(payload, header=None, secret=SECRET):
    h = b64u(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64u(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64u(sig)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(op, payload=b"", fin=True, mask=b"\x11\x22\x33\x44", rsv=0, length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mb = 0x80 if mask is not None else 0
    if n < 126:
        h = struct.pack("!BB", b0, mb | n)
    elif n <= 0xFFFF:
        h = struct.pack("!BBH", b0, mb | 126, n)
    else:
        h = struct.pack("!BBQ", b0, mb | 127, n)
    if mask is None:
        return h + payload
    return h + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


CHUNK_ONE = b"\x00\x00\x00\x00"      # 1-byte chunks
CHUNK_MIX = b"\x06\xc0\x02\x10"      # 7, rest, 3, 17
CHUNK_WHOLE = b"\xff\xff\xff\xff"    # one go


def http_seeds():
    up = ("GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
          "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:8080\r\n\r\n" % KEY)
    write("http", "upgrade", b"\x05" + CHUNK_ONE + up.encode())
    write("http", "upgrade-token-query", b"\x05" + CHUNK_MIX +
          ("GET /ws?token=%s&api_key=a%%20b+c HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (hs256({"sub": "u", "exp": EXP}), KEY)).encode())
    write("http", "pipelined-get", b"\x04" + CHUNK_MIX +
          b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"
          b"HEAD /api/stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    body = json.dumps({"updates": [{"symbol": "AAPL", "price": 190.5, "volume": 100}]}).encode()
    write("http", "post-publish", b"\x07" + CHUNK_MIX +
          b"POST /api/publish HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + hs256({"sub": "p", "role": "publisher", "exp": EXP}).encode() +
          b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    write("http", "post-chunked", b"\x06" + CHUNK_ONE +
          b"POST /api/publish HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"5\r\n{\"upd\r\n1a;ext=1\r\nates\":[{\"symbol\":\"MSFT\",\"pr\r\n0\r\nX-Trailer: 1\r\n\r\n")
    write("http", "http10-head", b"\x00" + CHUNK_WHOLE + b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    write("http", "xff-lines", b"\x03" + CHUNK_MIX +
          b"GET /ws HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nX-Forwarded-For: ::1\r\n"
          b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() +
          b"\r\nSec-WebSocket-Version: 13\r\nX-API-Key: key1\r\n\r\n")
    write("http", "absolute-uri", b"\x01" + CHUNK_MIX + b"GET http://example.com:8080/ws?x=1#frag HTTP/1.1\r\nHost: example.com\r\n\r\n")
    write("http", "body-too-large", b"\x02" + CHUNK_WHOLE + b"POST /api/publish HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\nabc")
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n"
    write("http", "too-many-headers", b"\x05" + CHUNK_WHOLE + many)
    write("http", "garbage", b"\x05" + CHUNK_ONE + b"GET /\x00 HTTP/1.1\r\n\r\n")
    write("http", "bad-key", b"\x05" + CHUNK_WHOLE +
          b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
          b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    write("http", "folded-header", b"\x05" + CHUNK_MIX + b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: a\r\n  continued\r\n\r\n")


def frame_seeds():
    # options: bit0 JSON endpoint, bits1-2 limit (0:125 1:1000 2,3:65536), bit3 1 = masking optional
    E, J = 0x04, 0x05
    write("frame", "text", bytes([E]) + CHUNK_ONE + frame(1, "hello"))
    write("frame", "ping-pong-close", bytes([E]) + CHUNK_MIX + frame(9, "ping!") + frame(10, "unsolicited") +
          frame(8, struct.pack("!H", 1000) + b"bye"))
    write("frame", "fragments-with-ping", bytes([E]) + CHUNK_MIX + frame(1, "frag", fin=False) + frame(9, "p") +
          frame(0, "men", fin=False) + frame(0, "ted") + frame(2, b"\x00\xff\xfe"))
    write("frame", "utf8-split", bytes([E]) + CHUNK_ONE + frame(1, "caf\xc3".encode("latin-1"), fin=False) +
          frame(0, "\xa9 \xe2\x82".encode("latin-1"), fin=False) + frame(0, b"\xac \xf0\x9f\x98\x80"))
    write("frame", "len16", bytes([E]) + CHUNK_MIX + frame(1, "x" * 300))
    write("frame", "len64-too-big", bytes([E]) + CHUNK_WHOLE + frame(2, b"", length=70000))
    write("frame", "len64-msb", bytes([E]) + CHUNK_WHOLE + frame(2, b"", length=(1 << 63) - 1)[:2] +
          b"\x80\x00\x00\x00\x00\x00\x00\x00" + b"\x11\x22\x33\x44")
    write("frame", "limit-125", bytes([0x00 | E & ~6]) + CHUNK_MIX + frame(1, "y" * 125) + frame(1, "z" * 126))
    write("frame", "rsv", bytes([E]) + CHUNK_WHOLE + frame(1, "a", rsv=4))
    write("frame", "unmasked", bytes([E]) + CHUNK_WHOLE + frame(1, "a", mask=None))
    write("frame", "unmasked-allowed", bytes([E | 8]) + CHUNK_MIX + frame(1, "a", mask=None) + frame(9, "", mask=None))
    write("frame", "binary-on-json", bytes([J]) + CHUNK_WHOLE + frame(2, b"\x01\x02"))
    write("frame", "invalid-utf8", bytes([E]) + CHUNK_ONE + frame(1, b"ok \xed\xa0\x80 no"))
    write("frame", "close-bad-code", bytes([E]) + CHUNK_WHOLE + frame(8, struct.pack("!H", 1005)))
    write("frame", "close-1-byte", bytes([E]) + CHUNK_WHOLE + frame(8, b"\x03"))
    write("frame", "nonminimal", bytes([E]) + CHUNK_WHOLE + b"\x81\xfe\x00\x05\x11\x22\x33\x44abcde")
    write("frame", "json-subscribe", bytes([J]) + CHUNK_MIX + frame(1, '{"type":"subscribe","symbols":["AAPL"],"id":1}'))


def utf8_seeds():
    write("utf8", "ascii", CHUNK_MIX + b"The quick brown fox jumps over the lazy dog 0123456789" * 2)
    write("utf8", "multibyte", CHUNK_ONE + "héllo wörld € 😀 Ω ☃ 𝄞".encode())
    write("utf8", "overlong", CHUNK_MIX + b"abc\xc0\x80def\xe0\x80\xafg")
    write("utf8", "surrogate", CHUNK_MIX + b"x\xed\xa0\x80y\xed\x9f\xbf")
    write("utf8", "above-max", CHUNK_ONE + b"\xf4\x8f\xbf\xbf\xf4\x90\x80\x80")
    write("utf8", "truncated", CHUNK_MIX + b"ok \xe2\x82")
    write("utf8", "stray-cont", CHUNK_WHOLE + b"\x80abc")


def inflate_seeds():
    import zlib

    def deflate(data):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]

    tick = b'{"type":"price_update","symbol":"AAPL","price":189.25,"bid":189.24,"ask":189.26,"seq":1}'
    write("inflate", "offer-plain", b"\x01permessage-deflate; client_max_window_bits")
    write("inflate", "offer-list", b"\x01x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10, "
          b'permessage-deflate; server_max_window_bits="15"; client_no_context_takeover')
    write("inflate", "offer-bad", b"\x01permessage-deflate; server_no_context_takeover=1; a=\"b,c\"")
    write("inflate", "rfc-hello", b"\x00\xf2\x48\xcd\xc9\xc9\x07\x00")
    write("inflate", "rfc-bfinal", b"\x00\xf3\x48\xcd\xc9\xc9\x07\x00\x00")
    write("inflate", "tick", b"\x04" + deflate(tick))
    write("inflate", "bomb", b"\x00" + deflate(b"a" * 100000))
    write("inflate", "corrupt", b"\x08" + deflate(tick)[:20] + b"\xff\xff\xff")
    write("inflate", "roundtrip-tick", b"\x02" + tick * 3)
    write("inflate", "roundtrip-empty", b"\x02")


def message_seeds():
    # mode: bits0-1 kind, bits2-4 role, bits5-6 leave, bit7 coalesce
    ANON, VIEWER, TRADER, PUB, ANALYST, ADMIN, SUPER = 0, 2, 3, 4, 5, 6, 7

    def mode(kind, role=0, leave=0, coalesce=False):
        return bytes([kind | role << 2 | leave << 5 | (0x80 if coalesce else 0)])

    def msgs(*objs):
        return b"\xff".join(o if isinstance(o, bytes) else json.dumps(o).encode() for o in objs)

    write("message", "anon-subscribe", mode(0, ANON) + b"\x00" + CHUNK_WHOLE + msgs(
        {"type": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1},
        {"type": "heartbeat", "id": "hb-1"},
        {"type": "unsubscribe", "symbols": ["AAPL"], "id": 2},
        {"type": "subscribe", "symbols": ["GOOG", "TSLA", "NVDA", "META"]}))
    write("message", "super-publish-subscribe", mode(0, SUPER, 1) + b"\x00" + CHUNK_WHOLE + msgs(
        {"type": "subscribe", "symbols": ["AAPL", "BTC-USD"], "id": 7},
        {"type": "publish", "updates": [{"symbol": "AAPL", "price": 190.25, "bid": 190.2, "ask": 190.3,
                                         "volume": 1200, "timestamp": 1767225600000}], "id": 8},
        {"type": "publish", "updates": [{"symbol": "BTC-USD", "price": 67000.5}, {"symbol": "AAPL", "price": 191}]},
        {"type": "admin_broadcast", "message": "maintenance at noon", "roles": ["viewer", "anonymous"]},
        {"type": "admin_broadcast", "message": {"text": "hi"}, "id": 9}))
    write("message", "publisher", mode(0, PUB, 2, True) + b"\x01" + CHUNK_WHOLE + msgs(
        {"type": "publish", "updates": [{"symbol": "MSFT", "price": 415.1, "volume": 10}]},
        {"type": "publish", "updates": [{"symbol": "NOPE", "price": 1}]},
        {"type": "publish", "updates": [{"symbol": "MSFT", "price": -1}]},
        {"type": "subscribe", "symbols": ["MSFT"]}))
    write("message", "trader-bad", mode(0, TRADER, 3) + b"\x00" + CHUNK_WHOLE + msgs(
        {"type": "subscribe", "symbols": ["AAPL", "aapl", "ZZZZ", "AAPL", "", "X" * 40], "id": 3},
        b"{not json", b"[1,2,3]", b"42", {"type": 5}, {"type": "nope"}, {"type": "heartbeat", "id": {"x": 1}},
        {"type": "heartbeat", "id": "x" * 65}, {"type": "trade", "symbol": "AAPL"},
        {"type": "set_options", "batch_ms": 100}, {"type": "get_history", "symbol": "AAPL"},
        {"type": "subscribe", "symbols": "AAPL"}, {"type": "unsubscribe", "symbols": [1]}))
    write("message", "suspicious", mode(0, VIEWER) + b"\x00" + CHUNK_WHOLE + msgs(
        {"type": "heartbeat", "note": "<script>alert(1)</script>"},
        {"type": "subscribe", "symbols": ["AAPL"], "x": {"y": ["javascript:void(0)"]}},
        {"type": "heartbeat", "onload ": "x", "a": "onclick=1"}))
    write("message", "authenticate", mode(0, ANON) + b"\x00" + CHUNK_WHOLE + msgs(
        {"type": "authenticate", "token": hs256({"sub": "fuzz-admin", "role": "admin", "exp": EXP})},
        {"type": "admin_broadcast", "message": "x"},
        {"type": "authenticate", "token": "not.a.token"},
        {"type": "authenticate", "api_key": "key1"},
        {"type": "authenticate"}))
    write("message", "analyst-many", mode(0, ANALYST, 0, True) + b"\x00" + CHUNK_WHOLE + msgs(
        *[{"type": "subscribe", "symbols": [s], "id": i} for i, s in
          enumerate(["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "MA", "SPY", "QQQ"])]))
    write("message", "echo", mode(1, ANON) + b"\x01" + CHUNK_WHOLE + b"hello\xffw\xc3\xb6rld\xff\xff" + b"z" * 300)
    raw = (frame(1, '{"type":"subscribe","symbols":["AAPL"]}') + frame(9, "ping") +
           frame(1, '{"type":"heart', fin=False) + frame(10, "") + frame(0, 'beat","id":1}') +
           frame(8, struct.pack("!H", 1000)))
    write("message", "raw-ws", mode(2, ANON) + b"\x00" + CHUNK_MIX + raw)
    write("message", "raw-ws-bad", mode(2, TRADER, 1) + b"\x00" + CHUNK_ONE + frame(1, b"\xff") + frame(2, b"x"))
    write("message", "raw-ws-binary", mode(2, ANON) + b"\x00" + CHUNK_WHOLE + frame(2, b"\x00\x01"))
    pub = hs256({"sub": "fuzz-publisher", "role": "publisher", "exp": EXP})
    adm = hs256({"sub": "fuzz-admin", "role": "admin", "exp": EXP})
    body = json.dumps({"updates": [{"symbol": "AAPL", "price": 190.5, "volume": 100}]}).encode()
    write("message", "http-get", mode(3) + b"\x00" + CHUNK_WHOLE +
          b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /api/stats HTTP/1.1\r\nHost: a\r\n\r\n"
          b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
          b"GET /app.js HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    write("message", "http-publish", mode(3) + b"\x00" + CHUNK_MIX +
          b"POST /api/publish HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + pub.encode() +
          b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    write("message", "http-admin", mode(3) + b"\x00" + CHUNK_WHOLE +
          b"GET /api/admin/connections HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + adm.encode() + b"\r\n\r\n"
          b"POST /api/admin/broadcast HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + adm.encode() +
          b"\r\nContent-Length: 22\r\n\r\n{\"message\":\"restart\"}\n")
    write("message", "http-admin-block", mode(3) + b"\x00" + CHUNK_WHOLE +
          b"POST /api/admin/block_ip HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + adm.encode() +
          b"\r\nContent-Length: 36\r\n\r\n{\"ip\":\"192.0.2.7\",\"duration_s\":60}  ")
    write("message", "http-errors", mode(3) + b"\x00" + CHUNK_ONE +
          b"DELETE /health HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\nHost: a\r\n\r\n")
    write("message", "http-head", mode(3) + b"\x00" + CHUNK_WHOLE + b"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n")


def jwt_seeds(rs_key, es_key):
    now = 1767225600
    base = {"sub": "alice", "role": "trader", "iat": now - 10, "exp": EXP}
    write("jwt", "hs256-valid", b"\x00" + hs256(base).encode())
    write("jwt", "hs256-expired", b"\x00" + hs256(dict(base, exp=now - 3600)).encode())
    write("jwt", "hs256-nbf-future", b"\x00" + hs256(dict(base, nbf=now + 3600)).encode())
    write("jwt", "hs256-bad-sig", b"\x00" + hs256(base, secret=b"x" * 40).encode())
    none = b64u(b'{"alg":"none","typ":"JWT"}') + "." + b64u(json.dumps(base).encode()) + "."
    write("jwt", "alg-none", b"\x00" + none.encode())
    write("jwt", "hs256-iss-aud", b"\x03" + hs256(dict(base, iss="tickgate-fuzz", aud=["x", "tickgate"])).encode())
    write("jwt", "hs256-real-times", b"\x00" + hs256(dict(base, exp=4102444800.5, iat=1.5e9)).encode())
    pub = open(os.path.join(ROOT, "keys", "rs256.pub.pem"), "rb").read()
    write("jwt", "alg-confusion", b"\x01" + hs256(base, secret=pub).encode())
    write("jwt", "resign-admin", b"\x04" + b'{"alg":"HS256","typ":"JWT"}\x00' +
          json.dumps({"sub": "bob", "role": "admin", "exp": EXP}).encode())
    write("jwt", "resign-claims", b"\x07" + b'{"alg":"HS256","kid":"k1"}\x00' +
          json.dumps({"sub": "carol", "exp": EXP, "nbf": 0, "iat": now, "iss": "tickgate-fuzz",
                      "aud": "tickgate", "role": "viewer"}).encode())
    oct = {"kty": "oct", "kid": "hs1", "k": b64u(b"tickgate-fuzz-secret-0123456789abcdef0123")}
    okp = {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    write("jwt", "jwks-oct-okp", b"\x08" + json.dumps({"keys": [oct, okp]}).encode())
    write("jwt", "jwks-dup-kid", b"\x08" + json.dumps({"keys": [oct, oct]}).encode())
    write("jwt", "jwks-ec-bad-point", b"\x08" + json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e",
                                                                       "x": b64u(b"\x01" * 32), "y": b64u(b"\x02" * 32)}]}).encode())
    write("jwt", "jwks-rsa-private", b"\x08" + b'{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","d":"AQ"}]}')
    write("jwt", "resign-bad", b"\x04" + b'{"alg":"HS256"}\x00{"sub":"","exp":"soon","role":7}')
    write("jwt", "b64-text", b"\x00" + b"eyJhbGciOiJIUzI1NiJ9.e30.AAAA==")
    if rs_key or es_key:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def signed(alg, sign):
            h = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
            p = b64u(json.dumps(base).encode())
            return (h + "." + p + "." + b64u(sign((h + "." + p).encode()))).encode()
        if rs_key:
            k = serialization.load_pem_private_key(open(rs_key, "rb").read(), None)
            write("jwt", "rs256-valid", b"\x01" + signed("RS256", lambda m: k.sign(m, padding.PKCS1v15(), hashes.SHA256())))
            write("jwt", "rs256-mixed-verifier", b"\x03" + signed("RS256", lambda m: k.sign(m, padding.PKCS1v15(), hashes.SHA256())))
        if es_key:
            k = serialization.load_pem_private_key(open(es_key, "rb").read(), None)

            def es(m):
                r, s = decode_dss_signature(k.sign(m, ec.ECDSA(hashes.SHA256())))
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")
            write("jwt", "es256-valid", b"\x02" + signed("ES256", es))


def users_seeds():
    def h(k):
        return "sha256:" + hashlib.sha256(k.encode()).hexdigest()
    users = {"users": [
        {"id": "alice", "username": "Alice", "role": "trader", "api_keys": [h("key1")]},
        {"id": "u1", "role": "admin", "active": True, "api_keys": [h("MYKEY"), h("secret-api-key")]},
        {"id": "feed-1", "role": "publisher"},
        {"id": "mallory", "role": "viewer", "active": False, "api_keys": [h("")]},
    ]}
    write("users", "users-valid", b"\x00" + json.dumps(users, indent=2).encode())
    write("users", "users-empty", b"\x00" + b'{"users": []}')
    write("users", "users-bad-role", b"\x00" + b'{"users": [{"id": "x", "role": "anonymous"}]}')
    write("users", "users-bad-key", b"\x00" + b'{"users": [{"id": "x", "api_keys": ["sha256:zz"]}]}')
    write("users", "users-dup-key", b"\x00" + b'{"users": [{"id": "a", "id": "b"}]}')
    write("users", "users-not-array", b"\x00" + b'{"users": {"id": "a"}}')
    write("users", "symbols", b"\x01" + b"# universe\nAAPL,189.25\nMSFT\n  BRK.B , 412.6\nEUR/USD,1.0842\n\nBTC-USD,67250\r\n")
    write("users", "symbols-bad-price", b"\x01" + b"AAPL,abc\n")
    write("users", "symbols-dup", b"\x01" + b"AAPL\nAAPL,1\nX:Y_Z-1.2/3\n")


def config_seeds():
    ini = """; tickgate.ini
[server]
listen = 127.0.0.1:0
workers = 2
ws_path = /ws
echo_path = /echo
allowed_origins = http://localhost:8080, https://example.com
trusted_proxies = 10.0.0.0/8, ::1, 192.168.1.7
handshake_timeout_ms = 5000
max_http_body_bytes = 1048576

[auth]
jwt_secret = 0123456789abcdef0123456789abcdef
jwt_algorithms = HS256
jwt_leeway_s = 30
allow_anonymous = true

[limits]
max_connections = 1000
max_connections_per_ip = 10
max_message_bytes = 65536
slow_consumer = conflate
shed_after_ms = 100
heartbeat_interval_s = 30

[security]
blocked_ips = 192.0.2.1, 2001:db8::1
suspicious_content = on

[feed]
simulator = yes
sim_ticks_per_s = 50

[roles]
viewer = base,data
publisher = heartbeat,publish
anonymous = heartbeat,authenticate,subscribe
"""
    write("config", "full", ini.encode() + b"\x00--server.listen=127.0.0.1:0\n--limits.slow_consumer=disconnect\x00"
          b"TICKGATE_LIMITS_MAX_CONNECTIONS=50\nTICKGATE_AUDIT_PATH=\n")
    write("config", "roles", b"[roles]\nsuper_admin = all\nadmin = base, admin_broadcast\ntrader = frobnicate\n\x00\x00")
    write("config", "bad-int", b"[limits]\nmax_connections = 0x10\n\x00--limits.max_message_bytes=99999999999\x00")
    write("config", "unknown-key", b"[server]\nlisten = [::1]:8080\nnope = 1\n")
    write("config", "help", b"\x00--help\x00")
    write("config", "env-unknown", b"\x00\x00TICKGATE_SERVER_NOPE=1\n")
    write("config", "listen-v6", b"[server]\nlisten=[::1]:65535\necho_path=/ws\n")
    write("config", "syntax-error", b"[server\nlisten\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rs-key")
    ap.add_argument("--es-key")
    a = ap.parse_args()
    http_seeds()
    frame_seeds()
    utf8_seeds()
    inflate_seeds()
    message_seeds()
    jwt_seeds(a.rs_key, a.es_key)
    users_seeds()
    config_seeds()
    for t in sorted(os.listdir(CORPUS)):
        print("%-8s %d seeds" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    main()
