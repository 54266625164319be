#!/usr/bin/python3
"""check.py - confirms the reference servers speak tickgate's benchmark subset
with the same frames (same shapes, same sizes) as tickgate itself.

    /usr/bin/python3 bench/ref/check.py [--tickgate build/tickgate]

Starts tickgate (if the binary exists), ws-server.js and uws-server.js on free
ports, runs the same script of subscribe / publish / heartbeat / unsubscribe /
bad-token handshake against each, and compares the transcripts after masking
what legitimately differs (client ids, server clocks). tickgate's snapshots
(price_update with "snapshot":true after a subscribe) are not part of the
reference servers' subset and are listed separately. Exit 0 when all match.
Needs python3-websockets 10.x (Debian 12's, for /usr/bin/python3) and node_modules in
bench/ref (npm ci).
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SECRET = "bench-check-secret-0123456789abcdef0123456789"
HEARTBEAT_S = 3600


def start(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for _ in range(50):
        line = p.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))
    p.kill()
    raise SystemExit(f"{cmd[0]}: no listening line")


def mask(frame):
    o = json.loads(frame)
    for k in ("client_id", "server_time"):
        if k in o:
            o[k] = "*"
    if isinstance(o.get("limits"), dict):
        o["limits"]["max_subscriptions"] = "*"  # tickgate's per-role table (publisher: 0)
    if o.get("type") == "price_update" and o.get("symbol") == "S1":
        o["timestamp"] = "*"  # published without a timestamp: the server's clock
    return o


async def script(port, sub_token, pub_token):
    url = f"ws://127.0.0.1:{port}/ws"
    out, snaps = [], []

    async def recv(ws, who, n=1):
        for _ in range(n):
            while True:
                f = await asyncio.wait_for(ws.recv(), 5)
                if '"snapshot":true' in f:
                    snaps.append((who, f))
                    continue
                out.append((who, len(f), mask(f)))
                break

    sub = await websockets.connect(url, extra_headers={"Authorization": f"Bearer {sub_token}"})
    await recv(sub, "sub")
    await sub.send(json.dumps({"type": "subscribe", "symbols": ["S0", "S1"], "id": 1}))
    await recv(sub, "sub")
    await asyncio.sleep(0.2)  # let snapshots (tickgate) arrive before the ticks
    pub = await websockets.connect(url, extra_headers={"Authorization": f"Bearer {pub_token}"})
    await recv(pub, "pub")
    await pub.send(json.dumps({"type": "publish", "updates": [
        {"symbol": "S0", "price": 100.5, "timestamp": 1700000000123},
        {"symbol": "S1", "price": 99.123456789, "bid": 99.1, "ask": 99.2, "volume": 12.5},
    ]}))
    await recv(pub, "pub")
    await recv(sub, "sub", 2)
    await pub.send(json.dumps({"type": "publish", "id": "p2", "updates": [
        {"symbol": "S0", "price": 99.9, "timestamp": 1700000000456, "volume": 3},
        {"symbol": "S1", "price": 99.0},
    ]}))
    await recv(pub, "pub")
    await recv(sub, "sub", 2)
    await sub.send(json.dumps({"type": "heartbeat", "id": "h"}))
    await recv(sub, "sub")
    await sub.send(json.dumps({"type": "unsubscribe", "symbols": ["S1"]}))
    await recv(sub, "sub")
    await pub.send(json.dumps({"type": "publish", "updates": [
        {"symbol": "S1", "price": 1.0, "timestamp": 1700000000789},
        {"symbol": "S0", "price": 1e-7 + 100, "timestamp": 1700000000790},
    ]}))
    await recv(pub, "pub")
    await recv(sub, "sub")  # only S0: S1 was unsubscribed
    await sub.send(json.dumps({"type": "nope"}))
    await recv(sub, "sub")
    await sub.close()
    await pub.close()
    try:
        await websockets.connect(url, extra_headers={"Authorization": "Bearer a.b.c"})
        out.append(("bad-token", 0, "accepted"))
    except websockets.exceptions.InvalidStatusCode as e:
        out.append(("bad-token", 0, f"HTTP {e.status_code}"))
    return out, snaps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickgate", default=os.environ.get("TICKGATE_BIN", os.path.join(ROOT, "build/tickgate")))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tg-check-")
    symfile = os.path.join(tmp, "symbols.txt")
    with open(symfile, "w") as f:
        f.write("".join(f"S{i},100.0\n" for i in range(10)))
    env = dict(os.environ, JWT_SECRET=SECRET, SYMBOLS_FILE=symfile, HEARTBEAT_INTERVAL_S=str(HEARTBEAT_S))

    servers = []
    have_tg = os.access(args.tickgate, os.X_OK)
    if have_tg:
        def token(role):
            return subprocess.check_output([args.tickgate, "token", "--sub", "bench", "--role", role,
                                            f"--auth.jwt_secret={SECRET}"], text=True).strip()
        sub_token, pub_token = token("viewer"), token("publisher")
        servers.append(("tickgate", [args.tickgate, "--server.listen=127.0.0.1:0", "--server.workers=1",
                                     f"--feed.symbols_file={symfile}", "--feed.simulator=false",
                                     f"--auth.jwt_secret={SECRET}", "--limits.viewer_max_symbols=100",
                                     "--limits.max_messages_per_minute=100000000",
                                     f"--limits.heartbeat_interval_s={HEARTBEAT_S}",
                                     f"--limits.heartbeat_timeout_s={HEARTBEAT_S}"]))
    else:
        print(f"note: {args.tickgate} not found; comparing the reference servers only")
        sys.path.insert(0, HERE)
        import hmac, hashlib, base64, time  # noqa: E401

        def token(role):
            b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()  # noqa: E731
            h = b(b'{"alg":"HS256","typ":"JWT"}')
            p = b(json.dumps({"sub": "bench", "role": role, "exp": int(time.time()) + 3600}).encode())
            s = b(hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
            return f"{h}.{p}.{s}"
        sub_token, pub_token = token("viewer"), token("publisher")
    servers.append(("uWS.js", ["node", os.path.join(HERE, "uws-server.js"), "0"]))
    servers.append(("ws", ["node", os.path.join(HERE, "ws-server.js"), "0"]))

    results = {}
    for name, cmd in servers:
        p, port = start(cmd, env)
        try:
            results[name] = asyncio.run(script(port, sub_token, pub_token))
        finally:
            p.terminate()
            p.wait(5)

    names = [n for n, _ in servers]
    base = names[0]
    ok = True
    print(f"{'frame':<44}" + "".join(f"{n:>10}" for n in names))
    for i, (who, n, o) in enumerate(results[base][0]):
        label = f"{who}: {o if isinstance(o, str) else o.get('type')}"
        row, same = [], True
        for nm in names:
            fr = results[nm][0]
            if i >= len(fr):
                row.append("missing")
                same = False
                continue
            row.append(str(fr[i][1]) if fr[i][1] else str(fr[i][2]))
            if fr[i][2] != o:
                same = False
        # sizes (bytes) can differ only where a masked field differs in length
        sizes = {r[0][i][1] for r in results.values() if i < len(r[0])}
        note = "   <-- DIFFERS" if not same else ("   (masked fields differ in length)" if len(sizes) > 1 else "")
        print(f"{label:<44}" + "".join(f"{c:>10}" for c in row) + note)
        if not same:
            ok = False
            for nm in names:
                if i < len(results[nm][0]):
                    print(f"    {nm}: {json.dumps(results[nm][0][i][2])}")
    for nm in names:
        if len(results[nm][0]) != len(results[base][0]):
            ok = False
            print(f"{nm}: {len(results[nm][0])} frames, {base}: {len(results[base][0])}")
        if results[nm][1]:
            print(f"{nm}: {len(results[nm][1])} snapshot frame(s) after subscribe (not in the reference subset)")
    print("all frames match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
