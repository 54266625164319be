#!/usr/bin/python3
"""valgrind smoke: tickgate under memcheck through a short life.

    /usr/bin/python3 tests/valgrind/smoke.py --bin build/tickgate

Starts `valgrind --leak-check=full --errors-for-leak-kinds=definite
--error-exitcode=99 build/tickgate ...` (two workers, simulator on, echo
endpoint, audit log, HS256 secret), then:
  - HTTP: /health, /metrics, /api/stats, the demo page, 404, 405, 413;
  - JSON clients: anonymous subscribe + snapshots + live ticks, a publisher
    publishing over WebSocket and POST /api/publish, in-band authenticate,
    unsubscribe, bad JSON, unknown type, suspicious content,
    admin_broadcast and the admin API;
  - echo: text, binary, fragmented, ping/pong, clean close;
  - bad frames: unmasked (1002), RSV bit (1002), invalid UTF-8 (1007),
    huge announced length (1009), binary on /ws (1003);
  - abrupt ends: RST of a subscribed client, mid-handshake and mid-frame
    disconnects, a client that never reads;
  - SIGTERM with clients still connected: they get 1001.
It passes when every step behaves and valgrind exits 0 (no memory error,
no definite leak). The valgrind log is printed on failure."""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import wsraw  # noqa: E402

SECRET = "tickgate-valgrind-secret-0123456789abcdef"
LISTEN_RE = re.compile(r"tickgate listening on (\S+):(\d+)")
T = 20.0  # valgrind makes everything slower: generous per-step deadlines


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(sub, role):
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    p = b64u(json.dumps({"sub": sub, "role": role, "exp": int(time.time()) + 3600}).encode())
    s = hmac.new(SECRET.encode(), (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64u(s)


class Client:
    def __init__(self, port, path="/ws", tok=None):
        self.raw = wsraw.WSRaw("127.0.0.1", port, T)
        hdr = {"Authorization": "Bearer " + tok} if tok else None
        self.raw.open(path, hdr, timeout=T)

    def send(self, obj):
        self.raw.send_text(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def recv(self):
        while True:
            f = self.raw.recv_frame(T)
            if f.opcode == wsraw.OP_PING:
                self.raw.send_frame(wsraw.OP_PONG, f.payload)
                continue
            assert f.opcode == wsraw.OP_TEXT, "expected text, got %s %r" % (wsraw.op_name(f.opcode), f.payload[:80])
            return json.loads(f.payload)

    def until(self, pred, what):
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = self.recv()
            if pred(m):
                return m
        raise AssertionError("no %s within %.0f s" % (what, T))

    def close(self):
        self.raw.close()


def step(name, fn):
    t = time.monotonic()
    fn()
    print("  ok  %-45s %.1f s" % (name, time.monotonic() - t), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--valgrind", default="valgrind")
    ap.add_argument("--suppressions", default="", help="a valgrind suppressions file (e.g. tests/valgrind/known.supp)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tickgate-valgrind-")
    vlog = os.path.join(tmp, "valgrind.log")
    cmd = [a.valgrind, "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99",
           "--track-origins=yes", "--num-callers=30", "--log-file=" + vlog]
    if a.suppressions:
        cmd.append("--suppressions=" + os.path.abspath(a.suppressions))
    cmd += [a.bin,
           "--server.listen=127.0.0.1:0", "--server.echo_path=/echo", "--server.workers=2",
           "--auth.jwt_secret=" + SECRET, "--audit.path=" + os.path.join(tmp, "audit.log"),
           "--security.blocks_file=" + os.path.join(tmp, "blocks.state"),
           "--feed.sim_ticks_per_s=200", "--limits.max_message_bytes=4096", "--server.shutdown_grace_ms=8000",
           "--server.max_http_body_bytes=65536"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = []
    ready = threading.Event()
    port_box = []

    def pump(s):
        for raw in iter(s.readline, b""):
            line = raw.decode("utf-8", "replace")
            out.append(line)
            m = LISTEN_RE.search(line)
            if m:
                port_box.append(int(m.group(2)))
                ready.set()
    for s in (p.stdout, p.stderr):
        threading.Thread(target=pump, args=(s,), daemon=True).start()

    def fail(msg):
        if p.poll() is None:
            p.kill()
            p.wait()
        print("valgrind-smoke: FAILED: %s" % msg)
        print("---- tickgate output ----\n" + "".join(out[-40:]))
        if os.path.exists(vlog):
            print("---- valgrind log (last 150 lines) ----\n" + "".join(open(vlog).readlines()[-150:]))
        return 1

    if not ready.wait(120):
        return fail("no 'listening' line within 120 s")
    port = port_box[0]
    print("valgrind-smoke: tickgate under valgrind on port %d (started in %.1f s)" % (port, time.monotonic() - t0))
    keep = []  # clients still connected at SIGTERM

    def http():
        for path, want in (("/health", 200), ("/metrics", 200), ("/api/stats", 200), ("/", 200), ("/nope", 404)):
            r = wsraw.http_request("127.0.0.1", port, "GET", path, timeout=T)
            assert r.status == want, (path, r)
        r = wsraw.http_request("127.0.0.1", port, "POST", "/health", timeout=T)
        assert r.status == 405, r
        r = wsraw.http_raw("127.0.0.1", port, b"POST /api/publish HTTP/1.1\r\nHost: a\r\nContent-Length: 999999\r\n\r\n",
                           timeout=T)
        assert r.status == 413, r

    def streaming():
        sub = Client(port)
        assert sub.recv()["type"] == "connected"
        sub.send({"type": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1})
        assert sub.recv()["type"] == "subscription_confirmed"
        sub.until(lambda m: m.get("type") == "price_update" and not m.get("snapshot"), "live tick")
        pub = Client(port, tok=token("feed-1", "publisher"))
        pub.recv()
        pub.send({"type": "publish", "updates": [{"symbol": "AAPL", "price": 1234.5, "volume": 7}], "id": "p1"})
        assert pub.until(lambda m: m.get("id") == "p1", "publish reply")["type"] == "published"
        sub.until(lambda m: m.get("type") == "price_update" and m.get("price") == 1234.5, "published tick")
        body = json.dumps({"updates": [{"symbol": "MSFT", "price": 4321.5}]}).encode()
        r = wsraw.http_request("127.0.0.1", port, "POST", "/api/publish",
                               {"Authorization": "Bearer " + token("feed-1", "publisher"),
                                "Content-Type": "application/json"}, body, timeout=T)
        assert r.status == 200, r
        sub.until(lambda m: m.get("type") == "price_update" and m.get("price") == 4321.5, "HTTP-published tick")
        sub.send({"type": "unsubscribe", "symbols": ["MSFT"], "id": 2})
        sub.until(lambda m: m.get("type") == "unsubscription_confirmed", "unsubscription")
        sub.send("{not json")
        sub.until(lambda m: m.get("code") == "invalid_json", "invalid_json")
        sub.send({"type": "frobnicate", "id": 3})
        sub.until(lambda m: m.get("code") == "unknown_type", "unknown_type")
        sub.send({"type": "heartbeat", "note": "<script>x</script>", "id": 4})
        sub.until(lambda m: m.get("code") == "suspicious_content", "suspicious_content")
        sub.send({"type": "authenticate", "token": token("alice", "trader"), "id": 5})
        sub.until(lambda m: m.get("type") == "authenticated", "authenticated")
        keep.append(sub)
        pub.close()

    def admin():
        adm = Client(port, tok=token("root", "super_admin"))
        adm.recv()
        adm.send({"type": "admin_broadcast", "message": "hello all", "id": "b1"})
        adm.until(lambda m: m.get("type") == "broadcast_sent", "broadcast_sent")
        r = wsraw.http_request("127.0.0.1", port, "GET", "/api/admin/connections",
                               {"Authorization": "Bearer " + token("root", "admin")}, timeout=T)
        assert r.status == 200 and len(r.json()["connections"]) >= 2, r
        adm.raw.send_close(1000)
        adm.raw.expect_close(1000, timeout=T)

    def echo():
        e = wsraw.WSRaw("127.0.0.1", port, T)
        e.open("/echo", timeout=T)
        e.send_frame(wsraw.OP_TEXT, "héllo")
        e.expect_frame(wsraw.OP_TEXT, "héllo", T)
        e.send_frame(wsraw.OP_BINARY, b"\x00\x01\x02")
        e.expect_frame(wsraw.OP_BINARY, b"\x00\x01\x02", T)
        e.send_frame(wsraw.OP_TEXT, "frag", fin=False)
        e.send_frame(wsraw.OP_PING, "p")
        e.send_frame(wsraw.OP_CONT, "mented")
        e.expect_frame(wsraw.OP_PONG, "p", T)
        e.expect_frame(wsraw.OP_TEXT, "fragmented", T)
        e.send_close(1000, "bye")
        e.expect_close(1000, timeout=T)

    def bad_frames():
        cases = [("/echo", dict(opcode=wsraw.OP_TEXT, payload="x", mask=False), 1002),
                 ("/echo", dict(opcode=wsraw.OP_TEXT, payload="x", rsv=4), 1002),
                 ("/echo", dict(opcode=wsraw.OP_TEXT, payload=b"\xed\xa0\x80"), 1007),
                 ("/echo", dict(opcode=wsraw.OP_BINARY, payload=b"", length_override=1 << 40), 1009),
                 ("/ws", dict(opcode=wsraw.OP_BINARY, payload=b"\x01"), 1003)]
        for path, kw, code in cases:
            c = wsraw.WSRaw("127.0.0.1", port, T)
            c.open(path, timeout=T)
            c.send_frame(**kw)
            c.expect_close(code, timeout=T, tcp_timeout=T)
            c.close()

    def abrupt():
        r = Client(port)
        r.recv()
        r.send({"type": "subscribe", "symbols": ["GOOG"]})
        r.recv()
        r.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.close()  # RST
        h = socket.create_connection(("127.0.0.1", port), timeout=T)
        h.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgr")
        h.close()  # mid-handshake
        m = Client(port)
        m.recv()
        m.raw.send(wsraw.build_frame(wsraw.OP_TEXT, b"x" * 100)[:30])
        m.close()  # mid-frame
        for i in range(20):  # a little churn: subscribe, then RST or FIN
            c = Client(port)
            c.recv()
            c.send({"type": "subscribe", "symbols": ["AAPL", "TSLA"][: 1 + i % 2]})
            if i % 2:
                c.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        slow = Client(port)  # never reads again; still connected at SIGTERM
        slow.send({"type": "subscribe", "symbols": ["AAPL", "MSFT", "GOOG"]})
        keep.append(slow)
        # the server must still serve a fresh client
        f = Client(port)
        assert f.recv()["type"] == "connected"
        keep.append(f)

    try:
        step("HTTP endpoints, 404/405/413", http)
        step("subscribe, publish (WS + HTTP), errors, authenticate", streaming)
        step("admin_broadcast and admin API", admin)
        step("echo: text, binary, fragments, ping, close", echo)
        step("bad frames: 1002, 1002, 1007, 1009, 1003", bad_frames)
        step("RST, mid-handshake, mid-frame, churn, non-reader", abrupt)
    except (AssertionError, OSError, wsraw.PeerClosed) as e:
        return fail("%s: %s" % (type(e).__name__, e))
    if p.poll() is not None:
        return fail("tickgate exited early with %s" % p.returncode)

    # SIGTERM with clients connected: the readers get 1001; exit within the grace.
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        keep[-1].raw.expect_close(1001, timeout=T)
    except (AssertionError, OSError) as e:
        return fail("no 1001 at SIGTERM: %s" % e)
    try:
        rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        return fail("no exit within 120 s of SIGTERM")
    for c in keep:
        c.close()
    log = open(vlog).read() if os.path.exists(vlog) else ""
    summary = re.findall(r"ERROR SUMMARY: .*", log)
    leaks = re.findall(r"(definitely lost|indirectly lost|possibly lost|still reachable): .*", log)
    if not leaks and "All heap blocks were freed" in log:
        leaks = ["all heap blocks freed"]
    print("valgrind-smoke: exit %d after SIGTERM (%.1f s); %s; %s" % (rc, time.monotonic() - t,
          summary[-1] if summary else "no summary", "; ".join(leaks) if leaks else "no leak summary"))
    if rc != 0:
        return fail("valgrind/tickgate exit code %d (99 = valgrind found errors or definite leaks)" % rc)
    print("valgrind-smoke: passed in %.0f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
