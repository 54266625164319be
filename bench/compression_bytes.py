#!/usr/bin/env python3
"""bench/compression_bytes.py - bytes on the wire per delivered tick, with
and without permessage-deflate, for single ticks and for price_batch.

Starts tickgate (TICKGATE_BIN) with its simulator, connects CLIENTS real
Python websockets clients (viewers, 10 symbols each), lets ticks flow for
SECONDS and divides the server's tickgate_bytes_sent_total delta by the
ticks the clients decoded. Usage:
  TICKGATE_BIN=build/tickgate python3 bench/compression_bytes.py [SECONDS]"""
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import jwt

SECRET = "compression-bench-secret-0123456789abcdef"
SYMS = ["AAPL", "MSFT", "GOOGL", "AMZN", "META", "NVDA", "TSLA", "JPM", "V", "WMT"]
CLIENTS = 10


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return int(re.search(r"^%s (\d+)" % name, text, re.M).group(1))


async def run(binary, compress, batch_ms, min_bytes, seconds):
    p = subprocess.Popen([binary, "--server.listen=127.0.0.1:0", "--auth.jwt_secret=" + SECRET, "--audit.path=",
                          "--security.blocks_file=", "--feed.sim_ticks_per_s=200", "--server.workers=1",
                          "--limits.max_connections_per_user=100", "--limits.max_connections_per_ip=100",
                          "--ws.compression_min_bytes=%d" % min_bytes], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        for line in p.stdout:
            m = re.search(rb"listening on [^:]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        import websockets
        token = jwt.encode({"sub": "bench", "role": "viewer", "exp": int(time.time()) + 600}, SECRET, "HS256")
        conns = []
        for _ in range(CLIENTS):
            ws = await websockets.connect("ws://127.0.0.1:%d/ws" % port, ping_interval=None, max_size=None,
                                          compression="deflate" if compress else None,
                                          extra_headers={"Authorization": "Bearer " + token})
            await ws.recv()
            if batch_ms:
                await ws.send(json.dumps({"type": "set_options", "batch_ms": batch_ms}))
                await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "symbols": SYMS}))
            conns.append(ws)
        counts = [0] * CLIENTS
        counting = False

        async def reader(i, ws):
            while True:
                m = json.loads(await ws.recv())
                if not counting:
                    continue
                if m["type"] == "price_update" and not m.get("snapshot"):
                    counts[i] += 1
                elif m["type"] == "price_batch":
                    counts[i] += len(m["updates"])

        tasks = [asyncio.ensure_future(reader(i, ws)) for i, ws in enumerate(conns)]
        await asyncio.sleep(1.0)  # snapshots and confirmations out of the way
        counting = True
        b0 = metric(port, "tickgate_bytes_sent_total")
        await asyncio.sleep(seconds)
        b1 = metric(port, "tickgate_bytes_sent_total")
        counting = False
        await asyncio.sleep(0.3)
        for t in tasks:
            t.cancel()
        for ws in conns:
            await ws.close()
        ticks = sum(counts)
        return (b1 - b0) / ticks if ticks else float("nan"), ticks
    finally:
        p.terminate()
        p.wait()


def main():
    binary = os.environ.get("TICKGATE_BIN", "build/tickgate")
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    print("| delivery | deflate | min_bytes | bytes/tick on the wire | ticks delivered |")
    print("|---|---|---|---|---|")
    for batch_ms in (0, 100):
        for compress, min_bytes in ((False, 256), (True, 256), (True, 64)):
            if batch_ms and min_bytes != 256:
                continue
            per, n = asyncio.run(run(binary, compress, batch_ms, min_bytes, seconds))
            print("| %s | %s | %d | %.1f | %d |" % ("batch_ms=%d" % batch_ms if batch_ms else "single ticks",
                                                    "on" if compress else "off", min_bytes, per, n))


if __name__ == "__main__":
    main()
