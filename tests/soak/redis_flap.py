#!/usr/bin/python3
"""Redis flap soak (issue 13): two tickgate nodes on one Redis under steady
load while Redis fails again and again, in every shape.

Starts a private redis-server (tests/integration/redis_helpers.RedisServer,
a free loopback port, never 6379) and two gateways ($TICKGATE_BIN, default
build/tickgate) on it with --redis.timeout_ms=500
--redis.reconnect_max_ms=300, simulator off, their own audit files, a high
message rate limit, the per-IP limit lifted and slow_consumer=disconnect (a
subscriber that falls behind is closed with 1013 and reported, never
silently conflated). Then:

  - --subs viewers per node (default 50), each subscribed to AAPL, MSFT,
    GOOGL and TSLA, and one publisher per node publishing one tick per
    symbol per round, --rate ticks/s in total (default 200). Publisher i's
    volumes are (i + 1) * 1e9 + n, n = 1, 2, ... per symbol: every tick
    names its publisher and its place in that publisher's sequence;
  - every 2-5 s (random.Random(--seed)) one fault: `kill` (SIGKILL, restart
    on the same port after 0.1-2 s: Redis comes back empty), `stop`
    (SIGSTOP for 0.8-3 s, longer than the 500 ms timeout, then SIGCONT: the
    resumed Redis still holds the scripts the nodes sent) or `short-stop`
    (SIGSTOP for 0.05-0.3 s, below the timeout: nothing must notice);
  - for `duration` seconds (argument, default 180).

It passes when:
  - on every subscriber, per symbol, seq is strictly increasing (no repeat,
    nothing older than what it already has); gaps are allowed (a node
    sequences locally while Redis is away) and counted;
  - a subscriber on the publisher's node receives every tick that publisher
    had acknowledged ("published"), in order, none missing, none twice:
    nothing local is lost; a subscriber on the other node may miss ticks
    published during an outage (counted) but never sees one twice or out of
    order;
  - no subscriber is closed, no publish is refused, every publish is
    acknowledged, /health answers every second and never says unhealthy;
  - neither node's RSS (/proc/PID/status VmRSS, sampled every second) grows
    by more than --rss-bound-mb (64) from the end of the warm-up (20 % of
    the run, 5-30 s) to the end;
  - after the run both nodes report redis "up" on /health and are
    subscribed again to every tick channel (PUBSUB NUMSUB = 2), one more
    round from each publisher then reaches every subscriber on both nodes,
    tickgate_fanout_dropped_total and tickgate_audit_events_dropped_total
    are 0;
  - SIGTERM ends both with exit code 0 within 15 s, every client still
    connected gets close 1001, no sanitizer or crash output, and each node's
    audit log has a CONNECTION_CLOSED event for the client_id of every
    client it served.

Every wait for the server awaits a message or a state within a deadline;
only the publishers' pace and the fault schedule are timed (the stimulus).

    TICKGATE_BIN=build/tickgate /usr/bin/python3 tests/soak/redis_flap.py 45

Prints a summary (faults by kind, ticks published and received, gaps,
remote misses, RSS), writes a JSON report (--report, default
build/redis-flap-report.json) and exits 0 on success, 1 on failure; on
failure the working directory (Redis log, audit logs, gateway output) is
kept and named."""
import argparse
import collections
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import wsraw  # noqa: E402
from conftest import Gateway, JsonWS, child_env, http_json, mint, rss_kb  # noqa: E402
from redis_helpers import RedisServer, gateway_args  # noqa: E402

P = "websocket:"
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "TSLA"]
START_PRICE = {"AAPL": 189.25, "MSFT": 415.10, "GOOGL": 171.30, "TSLA": 248.50}
VOL_BASE = 10 ** 9
NODE = "AB"
KINDS = ("kill", "stop", "short-stop")
TIMEOUT_MS = 500
RECONNECT_MAX_MS = 300
NODE_FLAGS = ["--redis.timeout_ms=%d" % TIMEOUT_MS, "--redis.reconnect_max_ms=%d" % RECONNECT_MAX_MS,
              "--limits.max_connections_per_ip=100000", "--limits.max_connections_per_user=100000",
              "--limits.slow_consumer=disconnect"]
CRASH_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error|Segmentation|Aborted|assertion", re.I)


class SetupError(Exception):
    pass


def guarded(what, fn, *args):
    """Runs a helper that reports failures through pytest.fail/skip (which
    raise BaseException subclasses) and turns those into SetupError."""
    try:
        return fn(*args)
    except BaseException as e:  # noqa: B036 - pytest's outcomes derive from BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise SetupError("%s: %s" % (what, e)) from None


class Run:
    """Shared state: the clock, the selector, the record of anomalies."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.sel = selectors.DefaultSelector()
        self.anomalies = []  # (t, category, text)
        self.counts = collections.Counter()
        self.faults = []  # dicts: t, kind, hold_s
        self.shutting_down = False

    def now(self):
        return time.monotonic() - self.t0

    def anomaly(self, category, text):
        self.counts[category] += 1
        if self.counts[category] <= 20:
            self.anomalies.append((round(self.now(), 3), category, text))

    def last_fault_before(self, t):
        prev = [f for f in self.faults if f["t"] <= t]
        return prev[-1] if prev else None


class Client:
    """One /ws connection: blocking handshake and setup through wsraw and
    JsonWS, then frames read by the run's selector loop."""

    def __init__(self, run, gw, node, name, token):
        self.run, self.node, self.name = run, node, name
        self.closed = None  # why, once the connection ended
        self.close_code = None  # the server's close code, when it sent a close frame
        self.raw = wsraw.WSRaw(gw.host, gw.port, timeout=10)
        self.raw.open("/ws", {"Authorization": "Bearer " + token}, timeout=10)
        self.ws = JsonWS(self.raw)
        self.hello = self.ws.expect("connected", timeout=10)
        self.client_id = self.hello["client_id"]

    def start_loop(self):
        self.sock = self.raw.sock
        self.sock.settimeout(5.0)  # sends fail after 5 s of a full buffer
        self.buf = bytearray(self.raw.buf)
        self.raw.buf.clear()
        self.run.sel.register(self.sock, selectors.EVENT_READ, self)
        if self.buf:
            self._frames()

    def send_frame(self, opcode, payload):
        if self.closed:
            return
        try:
            self.sock.sendall(wsraw.build_frame(opcode, payload))
        except OSError as e:
            self._end("send failed: %s" % e)

    def send_json(self, obj):
        self.send_frame(wsraw.OP_TEXT, json.dumps(obj, separators=(",", ":")).encode())

    def on_readable(self):
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError as e:
            self._end("recv failed: %s" % e)
            return
        if not data:
            self._end("EOF without a close frame")
            return
        self.buf += data
        self._frames()

    def _frames(self):
        buf = self.buf
        n = len(buf)
        pos = 0
        while n - pos >= 2 and not self.closed:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, hdr = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hdr = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            end = pos + hdr + ln
            if end > n:
                break
            op = b0 & 0x0F
            payload = bytes(buf[pos + hdr:end])
            pos = end
            if op == wsraw.OP_TEXT and b0 & 0x80:
                self.on_message(json.loads(payload))
            elif op == wsraw.OP_PING:
                self.send_frame(wsraw.OP_PONG, payload)
            elif op == wsraw.OP_PONG:
                pass
            elif op == wsraw.OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.send_frame(wsraw.OP_CLOSE, payload[:2])
                self._end("close frame %s %r" % (code, payload[2:].decode("utf-8", "replace")), code)
            else:
                self.run.anomaly("protocol", "%s: unexpected frame opcode 0x%x fin %d" % (self.name, op, b0 >> 7))
        del buf[:pos]

    def _end(self, why, code=None):
        if self.closed:
            return
        self.closed = why
        self.close_code = code
        if not self.run.shutting_down:
            self.run.anomaly("closed", "%s (node %s) closed at t=%.1f s: %s" % (self.name, NODE[self.node],
                                                                               self.run.now(), why))
        try:
            self.run.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.raw.close()

    def on_message(self, m):
        raise NotImplementedError


class Subscriber(Client):
    def __init__(self, run, gw, node, idx):
        super().__init__(run, gw, node, "sub-%s%d" % (NODE[node], idx),
                         mint("flap-%s-sub-%d" % (NODE[node].lower(), idx), "viewer", ttl=86400))
        self.last_seq = {}
        self.last_n = {}  # (publisher node, symbol) -> newest n seen
        self.received = 0
        self.gaps = 0  # seq jumps
        self.gap_seqs = 0  # seqs skipped by them
        self.remote_missed = 0  # other node's publisher's ticks not received
        self.local_missing = []  # (symbol, first n, last n, t)
        conf = self.ws.request({"type": "subscribe", "symbols": SYMBOLS, "id": "s"}, timeout=10)
        if conf.get("type") != "subscription_confirmed" or sorted(conf.get("symbols", [])) != sorted(SYMBOLS):
            raise SetupError("%s: subscribe answered %r" % (self.name, conf))
        want = set(SYMBOLS)
        while want:
            m = self.ws.recv(10)
            if m.get("type") != "price_update" or not m.get("snapshot") or m.get("symbol") not in want:
                raise SetupError("%s: expected snapshots of %s, got %r" % (self.name, sorted(want), m))
            want.discard(m["symbol"])
            self.last_seq[m["symbol"]] = m["seq"]
        for p in range(2):
            for s in SYMBOLS:
                self.last_n[(p, s)] = 0

    def on_message(self, m):
        t = m.get("type")
        if t != "price_update":
            if t not in ("token_expiring", "reconnect"):  # reconnect: the drain's advisory at SIGTERM
                self.run.anomaly("unexpected", "%s: %r" % (self.name, m))
            return
        if m.get("snapshot"):
            self.run.anomaly("unexpected", "%s: a snapshot outside a subscribe: %r" % (self.name, m))
            return
        self.received += 1
        sym, seq, vol = m["symbol"], m["seq"], m["volume"]
        last = self.last_seq[sym]
        if seq <= last:
            what = "repeat" if seq == last else "out-of-order"
            self.run.anomaly(what, "%s (node %s) %s seq %d after seq %d (volume %s) at t=%.3f"
                             % (self.name, NODE[self.node], sym, seq, last, vol, self.run.now()))
        else:
            if seq > last + 1:
                self.gaps += 1
                self.gap_seqs += seq - last - 1
            self.last_seq[sym] = seq
        p, n = divmod(int(vol), VOL_BASE)
        p -= 1
        if p not in (0, 1) or n <= 0:
            self.run.anomaly("unexpected", "%s: a tick of no publisher of this run: %r" % (self.name, m))
            return
        lastn = self.last_n[(p, sym)]
        if n <= lastn:
            self.run.anomaly("publisher-order", "%s (node %s) %s: publisher %s's tick #%d (seq %d) after its #%d "
                             "at t=%.3f" % (self.name, NODE[self.node], sym, NODE[p], n, seq, lastn, self.run.now()))
            return
        if n > lastn + 1:
            if p == self.node:
                self.local_missing.append((sym, lastn + 1, n - 1, round(self.run.now(), 3)))
                self.run.anomaly("local-loss", "%s (node %s) %s: own node's publisher's ticks #%d..#%d missing "
                                 "(got #%d, seq %d) at t=%.3f" % (self.name, NODE[self.node], sym, lastn + 1, n - 1,
                                                                  n, seq, self.run.now()))
            else:
                self.remote_missed += n - lastn - 1
        self.last_n[(p, sym)] = n


class Publisher(Client):
    def __init__(self, run, gw, node, seed):
        super().__init__(run, gw, node, "pub-%s" % NODE[node], mint("flap-%s-pub" % NODE[node].lower(), "publisher",
                                                                    ttl=86400))
        self.rng = random.Random(seed)
        self.n = {s: 0 for s in SYMBOLS}
        self.price = dict(START_PRICE)
        self.pending = {}  # publish id -> monotonic send time
        self.next_id = 0
        self.acked = 0
        self.max_ack_s = 0.0
        self.refused = 0

    def publish_round(self):
        ups = []
        for s in SYMBOLS:
            self.n[s] += 1
            self.price[s] = max(1.0, self.price[s] * (1 + self.rng.uniform(-0.001, 0.001)))
            ups.append({"symbol": s, "price": round(self.price[s], 2), "volume": (self.node + 1) * VOL_BASE + self.n[s]})
        self.next_id += 1
        self.pending[self.next_id] = time.monotonic()
        self.send_json({"type": "publish", "id": self.next_id, "updates": ups})

    def on_message(self, m):
        t = m.get("type")
        if t == "published":
            sent = self.pending.pop(m.get("id"), None)
            if sent is None or m.get("count") != len(SYMBOLS):
                self.run.anomaly("publish", "%s: unexpected reply %r" % (self.name, m))
                return
            self.acked += 1
            self.max_ack_s = max(self.max_ack_s, time.monotonic() - sent)
        elif t == "error":
            self.refused += 1
            self.pending.pop(m.get("id"), None)
            self.run.anomaly("publish", "%s: publish refused at t=%.3f: %r" % (self.name, self.run.now(), m))
        elif t not in ("token_expiring", "reconnect"):  # reconnect: the drain's advisory at SIGTERM
            self.run.anomaly("unexpected", "%s: %r" % (self.name, m))


class Faults(threading.Thread):
    """Applies one Redis fault every 2-5 s until told to stop (then the one
    under way is undone: Redis is running and not stopped when it ends)."""

    def __init__(self, run, redis, seed, until):
        super().__init__(daemon=True)
        self.r, self.redis, self.until = run, redis, until
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.error = None

    def hold(self, s):
        self.stop.wait(s)

    def run(self):  # noqa: C901 - one schedule
        rng = self.rng
        try:
            while not self.stop.wait(rng.uniform(2.0, 5.0)):
                kind = rng.choice(KINDS)
                hold = {"kill": lambda: rng.uniform(0.1, 2.0), "stop": lambda: rng.uniform(0.8, 3.0),
                        "short-stop": lambda: rng.uniform(0.05, 0.3)}[kind]()
                t = self.r.now()
                if t + hold > self.until:
                    break
                self.r.faults.append({"t": round(t, 3), "kind": kind, "hold_s": round(hold, 3)})
                if kind == "kill":
                    self.redis.kill()
                    self.hold(hold)
                    guarded("redis-server restart", self.redis.start)
                else:
                    self.redis.proc.send_signal(signal.SIGSTOP)
                    try:
                        self.hold(hold)
                    finally:
                        self.redis.proc.send_signal(signal.SIGCONT)
        except SetupError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = "fault thread: %r" % e


def health(gw):
    r = http_json(gw, "GET", "/health", timeout=5)
    return r.json()


def redis_up(gw):
    try:
        return health(gw)["checks"]["redis"] == "up"
    except (OSError, AssertionError, ValueError, KeyError):
        return False


def metrics(gw):
    r = http_json(gw, "GET", "/metrics", timeout=5)
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def redis_transitions(gw):
    """Counter of this node's 'redis: down (why)' lines by why, and the
    number of 'redis: up' lines."""
    downs = collections.Counter()
    ups = 0
    for line in gw.stderr.splitlines():
        m = re.search(r"redis: down \(([^);:]*)", line)
        if m:
            downs[m.group(1).strip()] += 1
        elif "redis: up" in line:
            ups += 1
    return downs, ups


def main():  # noqa: C901 - one scenario, top to bottom
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("duration", nargs="?", type=float, default=180.0, help="seconds of load and faults (180)")
    ap.add_argument("--subs", type=int, default=50, help="subscribers per node (50)")
    ap.add_argument("--rate", type=float, default=200.0, help="ticks per second published in total (200)")
    ap.add_argument("--seed", type=int, default=13, help="seed of the fault schedule (13)")
    ap.add_argument("--rss-bound-mb", type=float, default=64.0, help="allowed RSS growth per node after warm-up")
    ap.add_argument("--report", default=os.path.join(ROOT, "build", "redis-flap-report.json"))
    ap.add_argument("--keep", action="store_true", help="keep the working directory even on success")
    a = ap.parse_args()
    binary = os.environ.get("TICKGATE_BIN") or os.path.join(ROOT, "build", "tickgate")
    if not os.access(binary, os.X_OK):
        print("redis_flap: no tickgate binary at %s (make, or set TICKGATE_BIN)" % binary)
        return 1
    warmup = max(5.0, min(30.0, 0.2 * a.duration))
    rounds_per_s = a.rate / (2 * len(SYMBOLS))
    tmp = tempfile.mkdtemp(prefix="tickgate-flap-")
    run = Run()
    problems = []
    redis = None
    gws = []
    subs, pubs = [], []
    faults = None
    rss = [[], []]  # per node: (t, kB)
    health_bad = []
    report = {}
    try:
        redis = RedisServer(tmp)
        guarded("redis-server", redis.start)
        audits = [os.path.join(tmp, "audit-%s.log" % NODE[i]) for i in range(2)]
        for i in range(2):
            gw = Gateway([binary, "--server.listen=127.0.0.1:0"] + gateway_args(redis, audits[i], *NODE_FLAGS),
                         child_env())
            gws.append(gw)
            guarded("gateway %s" % NODE[i], gw.wait_listening)
        deadline = time.monotonic() + 15
        for gw in gws:
            while not redis_up(gw):
                if time.monotonic() > deadline:
                    raise SetupError("gateway on port %d: redis not up within 15 s" % gw.port)
                time.sleep(0.02)
        for i, gw in enumerate(gws):
            for k in range(a.subs):
                subs.append(Subscriber(run, gw, i, k))
            pubs.append(Publisher(run, gw, i, a.seed * 10 + i))
        for c in subs + pubs:
            c.start_loop()
        rc = redis.client()
        deadline = time.monotonic() + 15
        while not all(n == 2 for _, n in rc.pubsub_numsub(*[P + "tick:" + s for s in SYMBOLS])):
            if time.monotonic() > deadline:
                raise SetupError("both nodes not on every tick channel within 15 s: %r"
                                 % rc.pubsub_numsub(*[P + "tick:" + s for s in SYMBOLS]))
            time.sleep(0.02)
        rc.close()
        pids = [gw.pid for gw in gws]
        print("redis_flap: redis-server port %d, nodes A pid %d port %d, B pid %d port %d; %d subscribers per node on "
              "%s; %.0f ticks/s for %.0f s; faults seed %d; warm-up %.0f s; %s"
              % (redis.port, pids[0], gws[0].port, pids[1], gws[1].port, a.subs, ",".join(SYMBOLS), a.rate,
                 a.duration, a.seed, warmup, binary), flush=True)

        # ---- the run: publishers at their pace, faults in their thread ----
        run.t0 = time.monotonic()
        t_end = a.duration
        faults = Faults(run, redis, a.seed, t_end - 0.5)
        interval = 1.0 / rounds_per_s
        next_round = [0.0, interval / 2]
        slips = 0
        next_sample = 0.0
        crashed = False

        def sample(t):
            for i, gw in enumerate(gws):
                try:
                    rss[i].append((round(t, 1), rss_kb(gw.pid)))
                    h = health(gw)
                    if h.get("status") == "unhealthy":
                        health_bad.append((round(t, 1), NODE[i], h))
                except (OSError, AssertionError, ValueError) as e:
                    health_bad.append((round(t, 1), NODE[i], "no /health answer: %s" % e))

        faults.start()
        while True:
            t = run.now()
            if t >= t_end:
                break
            for i, gw in enumerate(gws):
                if gw.proc.poll() is not None:
                    problems.append("node %s (pid %d) exited during the run at t=%.1f s: code %s"
                                    % (NODE[i], gw.pid, t, gw.proc.returncode))
                    crashed = True
            if crashed or faults.error:
                break
            for i, p in enumerate(pubs):
                if t >= next_round[i]:
                    p.publish_round()
                    next_round[i] += interval
                    if t - next_round[i] > 1.0:  # the loop fell behind: no burst to catch up
                        slips += 1
                        next_round[i] = t + interval
            if t >= next_sample:
                sample(t)
                next_sample += 1.0
            wait = max(0.0, min(min(next_round), next_sample, t_end) - run.now())
            for key, _ in run.sel.select(min(wait, 0.1)):
                key.data.on_readable()
        run_s = run.now()
        faults.stop.set()
        faults.join(30)
        if faults.is_alive():
            problems.append("the fault thread did not finish within 30 s")
        if faults.error:
            problems.append(faults.error)
        if crashed or faults.error:
            raise SetupError("run aborted")

        def pump_until(cond, timeout, what):
            deadline = time.monotonic() + timeout
            while True:
                v = cond()
                if v:
                    return v
                if time.monotonic() >= deadline:
                    problems.append("%s not reached within %.0f s" % (what, timeout))
                    return None
                for key, _ in run.sel.select(0.05):
                    key.data.on_readable()

        # ---- after the run: recovery, then the last round everywhere ----
        t_rec = time.monotonic()
        pump_until(lambda: all(p.closed or not p.pending for p in pubs), 15, "every publish acknowledged")
        for p in pubs:
            if p.pending:
                problems.append("%s: %d publishes never acknowledged (oldest id %d)"
                                % (p.name, len(p.pending), min(p.pending)))
        up = pump_until(lambda: all(redis_up(gw) for gw in gws), 30,
                        "redis 'up' on both nodes' /health")
        recovered_s = round(time.monotonic() - t_rec, 2) if up else None
        rc = redis.client()
        chans = [P + "tick:" + s for s in SYMBOLS]
        pump_until(lambda: all(n == 2 for _, n in rc.pubsub_numsub(*chans)), 15,
                   "both nodes subscribed to every tick channel again")
        numsub = dict(rc.pubsub_numsub(*chans))
        rc.close()
        for p in pubs:
            p.publish_round()

        def all_final():
            return all(s.closed or all(s.last_n[(p.node, sym)] >= p.n[sym] for p in pubs for sym in SYMBOLS)
                       for s in subs)

        pump_until(all_final, 15, "the final round from both publishers on every subscriber")
        pump_until(lambda: all(p.closed or not p.pending for p in pubs), 10, "the final round acknowledged")
        for s in subs:
            if s.closed:
                continue
            for p in pubs:
                short = {sym: (s.last_n[(p.node, sym)], p.n[sym]) for sym in SYMBOLS
                         if s.last_n[(p.node, sym)] < p.n[sym]}
                if short:
                    problems.append("%s (node %s) lacks %s ticks of %s (%s node) after recovery: newest seen/published "
                                    "%r" % (s.name, NODE[s.node], "the last" if p.node != s.node else "local",
                                            p.name, "its own" if p.node == s.node else "the other", short))
        metrics_end = []
        for i, gw in enumerate(gws):
            m = metrics(gw)
            metrics_end.append(m)
            for k in ("tickgate_fanout_dropped_total", "tickgate_audit_events_dropped_total"):
                if m.get(k):
                    problems.append("node %s: %s = %d" % (NODE[i], k, m[k]))
        rss_final = [rss_kb(gw.pid) for gw in gws]

        # ---- SIGTERM both, answering the close frames meanwhile ----
        run.shutting_down = True
        t_term = time.monotonic()
        for gw in gws:
            gw.send_signal(signal.SIGTERM)
        pump_until(lambda: all(gw.proc.poll() is not None for gw in gws), 15, "both nodes' exit after SIGTERM")
        term_s = round(time.monotonic() - t_term, 2)
        exit_codes = []
        for i, gw in enumerate(gws):
            rc_ = gw.stop(timeout=1)
            exit_codes.append(rc_)
            if rc_ != 0:
                problems.append("node %s after SIGTERM: %s" % (NODE[i], "killed, no exit within 15 s" if rc_ is None
                                                               else "exit code %d" % rc_))
        # The processes are gone: every socket ends (close frame or EOF).
        pump_until(lambda: all(c.closed for c in subs + pubs), 5, "every client socket ended after the exit")
        no_1001 = [(c.name, c.closed) for c in subs + pubs if c.close_code != 1001]
        for c in subs + pubs:
            if not c.closed:
                c._end("still open after the server exited")
        if no_1001:
            problems.append("%d clients got no close 1001 at shutdown (e.g. %s)" % (len(no_1001), no_1001[:3]))

        # ---- audit: a CONNECTION_CLOSED for every client of each node ----
        audit_missing = []
        for i in range(2):
            closed = set()
            with open(audits[i]) as f:
                for line in f:
                    if line.strip():
                        e = json.loads(line)
                        if e.get("event") == "CONNECTION_CLOSED":
                            closed.add(e.get("client_id"))
            ids = {c.client_id for c in subs + pubs if c.node == i}
            missing = sorted(ids - closed)
            audit_missing.append(len(missing))
            if missing:
                problems.append("node %s's audit log lacks CONNECTION_CLOSED for %d of its %d clients (e.g. %s)"
                                % (NODE[i], len(missing), len(ids), missing[:3]))
        for i, gw in enumerate(gws):
            bad = [line for line in (gw.stdout + gw.stderr).splitlines() if CRASH_RE.search(line)]
            if bad:
                problems.append("node %s printed crash or sanitizer output: %s" % (NODE[i], bad[:5]))

        # ---- verdicts on what the subscribers saw ----
        for cat in ("repeat", "out-of-order", "publisher-order", "local-loss", "closed", "publish", "unexpected",
                    "protocol"):
            if run.counts[cat]:
                problems.append("%d x %s (first: %s)" % (run.counts[cat], cat,
                                                         next(x[2] for x in run.anomalies if x[1] == cat)))
        if health_bad:
            problems.append("%d /health samples unhealthy or unanswered, first %r" % (len(health_bad), health_bad[0]))
        rss_summary = []
        for i in range(2):
            after = [kb for t, kb in rss[i] if t >= warmup]
            base = after[0] if after else None
            end = rss_final[i]
            rss_summary.append({"start_kb": rss[i][0][1] if rss[i] else None, "after_warmup_kb": base,
                                "max_kb": max(kb for _, kb in rss[i]) if rss[i] else None, "end_kb": end})
            if base is None:
                problems.append("node %s: no RSS sample after the warm-up" % NODE[i])
            elif end - base > a.rss_bound_mb * 1024:
                problems.append("node %s: RSS grew by %d kB after the warm-up (%d -> %d kB), bound %d kB"
                                % (NODE[i], end - base, base, end, a.rss_bound_mb * 1024))
        if not run.faults:
            problems.append("no fault applied (run too short?)")

        # ---- summary ----
        kinds = collections.Counter(f["kind"] for f in run.faults)
        published = sum(p.n[s] for p in pubs for s in SYMBOLS)
        received = sum(s.received for s in subs)
        per_node = []
        for i in range(2):
            ns = [s for s in subs if s.node == i]
            downs, ups = redis_transitions(gws[i])
            per_node.append({
                "node": NODE[i], "received": sum(s.received for s in ns),
                "gaps_per_sub": [min(s.gaps for s in ns), max(s.gaps for s in ns)],
                "gap_seqs_per_sub": [min(s.gap_seqs for s in ns), max(s.gap_seqs for s in ns)],
                "remote_missed_per_sub": [min(s.remote_missed for s in ns), max(s.remote_missed for s in ns)],
                "redis_down": dict(downs), "redis_up": ups,
                "redis_errors": metrics_end[i].get("tickgate_redis_errors_total"), "rss": rss_summary[i],
                "exit": exit_codes[i], "audit_missing": audit_missing[i]})
        print("redis_flap: %.0f s, %d faults: %s" % (run_s, len(run.faults), ", ".join(
            "%d %s" % (kinds[k], k) for k in KINDS)))
        print("redis_flap: published %d ticks (%s), %d rounds late; received %d price updates in all; publish acks "
              "max %.0f ms" % (published, ", ".join("%s %d" % (p.name, sum(p.n.values())) for p in pubs), slips,
                               received, 1000 * max(p.max_ack_s for p in pubs)))
        for d in per_node:
            print("redis_flap: node %s: %d received; per subscriber %s-%s seq gaps (%s-%s seqs skipped), %s-%s of "
                  "the other node's ticks missed; redis down %s, up %d times, %s errors; RSS start %s kB, after "
                  "warm-up %s kB, max %s kB, end %s kB; exit %s"
                  % (d["node"], d["received"], d["gaps_per_sub"][0], d["gaps_per_sub"][1], d["gap_seqs_per_sub"][0],
                     d["gap_seqs_per_sub"][1], d["remote_missed_per_sub"][0], d["remote_missed_per_sub"][1],
                     sum(d["redis_down"].values()), d["redis_up"], d["redis_errors"], d["rss"]["start_kb"],
                     d["rss"]["after_warmup_kb"], d["rss"]["max_kb"], d["rss"]["end_kb"], d["exit"]))
            print("redis_flap:   node %s down reasons: %s" % (d["node"], d["redis_down"]))
        print("redis_flap: both nodes up again %s s after the run; tick channels %r; SIGTERM: exit %s in %.1f s"
              % (recovered_s, numsub, exit_codes, term_s))
        report = {"duration_s": a.duration, "run_s": round(run_s, 1), "seed": a.seed, "rate": a.rate,
                  "subs_per_node": a.subs, "warmup_s": warmup, "faults": run.faults, "fault_kinds": dict(kinds),
                  "published": {p.name: p.n for p in pubs}, "received": received, "late_rounds": slips,
                  "nodes": per_node, "recovered_s": recovered_s, "sigterm_s": term_s,
                  "rss_samples": {NODE[i]: rss[i] for i in range(2)}, "health_bad": health_bad[:20],
                  "anomalies": run.anomalies, "anomaly_counts": dict(run.counts)}
    except SetupError as e:
        problems.append(str(e))
    finally:
        if faults is not None and faults.is_alive():
            faults.stop.set()
            faults.join(30)
        for gw in gws:
            if gw.proc.poll() is None:
                gw.kill()
        if redis is not None and redis.proc is not None:
            try:
                redis.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
            redis.kill()
    report["problems"] = problems
    if run.faults and "faults" not in report:
        report["faults"] = run.faults
    os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
    with open(a.report, "w") as f:
        json.dump(report, f, indent=1)
    print("redis_flap: report in %s" % a.report)
    if problems:
        for i, gw in enumerate(gws):
            with open(os.path.join(tmp, "gateway-%s.out" % NODE[i]), "w") as f:
                f.write(gw.stdout + "\n--- stderr ---\n" + gw.stderr)
        print("redis_flap: FAILED")
        for p in problems:
            print("  - " + p)
        if run.anomalies:
            print("  anomalies (first of each kind, t in s from the start of the run):")
            for t, cat, text in run.anomalies[:40]:
                f = run.last_fault_before(t)
                print("    t=%8.3f %-15s %s  [last fault: %s]" % (t, cat, text, f))
        print("  faults (t, kind, hold s): %s" % [(f["t"], f["kind"], f["hold_s"]) for f in run.faults])
        print("  logs kept in %s (redis log, audit logs, gateway-*.out)" % tmp)
        return 1
    if a.keep:
        print("redis_flap: logs kept in %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("redis_flap: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
