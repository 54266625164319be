#!/usr/bin/python3
"""measure.py - the Python half of bench/run.sh (standard library only).

    measure.py run   --out F --server-pid P --timeout S --log L -- LOADGEN...
        Runs one load-generator invocation and writes F: the loadgen's JSON
        ("lg"), plus what this wrapper saw from /proc over the whole run
        ("own": server CPU %, server RSS before / peak / after, loadgen CPU %,
        wall time), the exit status, and whether the server survived.
        Always exits 0: a failed run is a result, reported in the table.
    measure.py rate  --dir D --servers "a b" --conns N --default R
        Prints the latency scenario's tick rate: half the weakest server's
        fan-out delivered rate (ws left out when another server ran),
        divided by the fan-out subscriber count.
    measure.py maxrate --file F --conns N --factor X [--pass]
        Prints X times the tick rate of F's fan-out maximum (saturation):
        below 1 (or with --pass) its last passing step, from 1 its first
        failing one.
    measure.py holds FILE
        Exit 0 when FILE, a fixed-rate run, held its rate: delivered >= 95%
        of what was published in the window and p99 <= 100 ms (the ramp's
        own test, applied to a whole run). run.sh's sustain scenario.
    measure.py mark --file F --set K=V ...
        Records run.sh's verdicts (integers) among F's loadgen figures.
    measure.py stalled FILE
        Exit 0 when FILE is a ramp whose failing step found the server mostly
        idle (a delivery stall, not saturation): run.sh then runs it again.
    measure.py best --out F FILE...
        Writes to F the run with the highest delivered rate, listing all.
    measure.py table --dir D --md FILE --json FILE [--param K=V ...]
        Prints the comparison table and writes it as markdown (and the raw
        results as JSON).
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_NAMES = {"tickgate": "tickgate", "uws": "uWS.js", "ws": "ws"}


# ---- /proc ---------------------------------------------------------------

def proc_cpu_s(pid):
    """utime + stime of pid (all its threads) in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK  # fields 14, 15
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def parse_json_output(text):
    """The loadgen's --json object: the whole output, or its last line that
    parses as a JSON object."""
    text = text.strip()
    try:
        o = json.loads(text)
        if isinstance(o, dict):
            return o
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                o = json.loads(line)
                if isinstance(o, dict):
                    return o
            except ValueError:
                continue
    return None


def cmd_run(a):
    pid = a.server_pid
    shown = [("<jwt>" if i and a.cmd[i - 1] in ("--pub-token", "--sub-token") else c) for i, c in enumerate(a.cmd)]
    res = {"cmd": shown, "log": a.log, "lg": None, "rc": None, "error": None}
    cpu0, rss0, t0 = proc_cpu_s(pid), proc_rss_kb(pid), time.monotonic()
    rcpu0 = [proc_cpu_s(r) for r in a.redis_pid]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = [rss0 or 0]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            r = proc_rss_kb(pid)
            if r and r > peak[0]:
                peak[0] = r

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    with open(a.log, "w") as log:
        try:
            p = subprocess.Popen(a.cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
        except OSError as e:
            res["error"] = f"cannot start the loadgen: {e}"
            p = None
        if p:
            def stop(signum, frame):  # run.sh is being interrupted: take the loadgen down too
                p.kill()
                sys.exit(128 + signum)
            signal.signal(signal.SIGTERM, stop)
            try:
                out, _ = p.communicate(timeout=a.timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                res["error"] = f"loadgen killed after {a.timeout:.0f} s"
            res["rc"] = p.returncode
            log.write("\n--- stdout ---\n" + out)
            res["lg"] = parse_json_output(out)
            if res["lg"] is None and not res["error"]:
                res["error"] = f"no JSON object on the loadgen's stdout (exit {p.returncode})"
            elif p.returncode != 0 and not res["error"]:
                res["error"] = f"loadgen exited {p.returncode}"
    done.set()
    th.join()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1, rss1 = proc_cpu_s(pid), proc_rss_kb(pid)
    res["server_alive"] = cpu1 is not None
    if not res["server_alive"]:
        res["error"] = "the server died during the run" + (f" ({res['error']})" if res["error"] else "")
    lg_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res["own"] = {
        "wall_s": round(wall, 3),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1) if cpu0 is not None and cpu1 is not None else None,
        "server_rss_before_kb": rss0,
        "server_rss_peak_kb": peak[0] or None,
        "server_rss_after_kb": rss1,
        "loadgen_cpu_pct": round(100 * lg_cpu / wall, 1) if res["rc"] is not None else None,
    }
    if a.redis_pid:
        rcpu1 = [proc_cpu_s(r) for r in a.redis_pid]
        ok = all(v is not None for v in rcpu0 + rcpu1)
        res["own"]["redis_cpu_pct"] = round(100 * sum(rcpu1[i] - rcpu0[i] for i in range(len(rcpu0))) / wall, 1) \
            if ok else None
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    lg = res["lg"] or {}
    brief = ", ".join(f"{k}={lg[k]}" for k in ("delivered_per_s", "lost", "p99_us", "handshakes_per_s",
                                                "server_rss_kb", "conns", "tls_resumed") if k in lg)
    sys.stderr.write(f"    -> {brief or '(no figures)'}; {res['error'] or 'ok'} ({wall:.0f} s)\n")
    return 0


# ---- results -------------------------------------------------------------

def read_result(path):
    """A result file's JSON, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load(d, server, scen):
    return read_result(os.path.join(d, f"{server}.{scen}.json"))


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def cmd_rate(a):
    """Half the weakest fan-out maximum of this run, in ticks/s per subscriber
    set. ws is left out when another server ran: its maximum is a twentieth
    of uWS.js's, and at half of it every fan-out is a single send per
    subscriber per tick (the latency of one sweep), which says nothing of how
    the fast servers behave under load; ws then runs at the others' rate
    and shows whether it keeps up."""
    conns = a.conns
    rates = {}
    for s in a.servers.split():
        r = load(a.dir, s, "fanout")
        v = num(((r or {}).get("lg") or {}).get("delivered_per_s"))
        if v:
            rates[s] = v
    if len(rates) > 1:
        rates.pop("ws", None)
    rates = list(rates.values())
    if not rates:
        print(a.default)
        return 0
    print(max(1, int(min(rates) / 2 / conns)))
    return 0


def cmd_maxrate(a):
    """A fixed rate (ticks/s) below or above a server's fan-out maximum. The
    ramp brackets the maximum between its last passing step and the first
    failing one (1.25x apart), so a factor below 1 scales the last pass
    (surely below the maximum) and a factor of 1 or more the first failure
    (surely above it; the last pass when the ramp never failed). Exit 1 when
    the fan-out run is missing."""
    r = read_result(a.file)
    best = lg_get(r, "delivered_per_s")
    if not best:
        return 1
    rate = best / a.conns
    if a.factor >= 1 and not a.last_pass:
        steps = ((r or {}).get("lg") or {}).get("steps") or []
        failed = [num(st.get("rate")) for st in steps if st.get("pass") is False]
        if failed and failed[0]:
            rate = failed[0]
    print(max(1, int(rate * a.factor)))
    return 0


HOLD_DELIVERED = 0.95
HOLD_P99_US = 100000


def cmd_holds(a):
    r = read_result(a.file)
    exp, got, p99 = lg_get(r, "expected"), lg_get(r, "delivered"), lg_get(r, "p99_us")
    return 0 if exp and got is not None and got >= HOLD_DELIVERED * exp and p99 is not None and p99 <= HOLD_P99_US \
        else 1


def cmd_mark(a):
    """Sets K=V (integers) in FILE's loadgen figures: how run.sh records
    what it decided about a run (sustain: held, steps_down)."""
    with open(a.file) as f:
        r = json.load(f)
    lg = r.get("lg")
    if not isinstance(lg, dict):
        return 1
    for kv in a.set:
        k, _, v = kv.partition("=")
        lg[k] = int(v)
    with open(a.file, "w") as f:
        json.dump(r, f)
    return 0


STALL_CPU_PCT = 60
LOADGEN_BUSY_PCT = 90


def stalled(r):
    """A ramp whose failing step found the server mostly idle: the step did not
    fail because the server saturated but because delivery stalled (seen on
    loopback as TCP zero-window/persist-probe pauses of 0.5-3 s)."""
    lg = (r or {}).get("lg") or {}
    for st in lg.get("steps") or []:
        if st.get("pass") is False:
            cpu = num(st.get("server_cpu_pct"))
            return cpu is not None and cpu < STALL_CPU_PCT
    return False


def cmd_stalled(a):
    r = read_result(a.file)
    return 0 if r is not None and stalled(r) else 1


def load_runs(files):
    """The results of several attempts at one scenario (unreadable ones skipped)."""
    return [r for r in map(read_result, files) if r is not None]


def cmd_best(a):
    runs = load_runs(a.files)
    if not runs:
        return 1
    key = lambda r: num(((r.get("lg") or {}).get("delivered_per_s"))) or -1  # noqa: E731
    best = dict(max(runs, key=key))
    best["attempts"] = [{"delivered_per_s": key(r), "stalled": stalled(r), "log": r.get("log")} for r in runs]
    with open(a.out, "w") as f:
        json.dump(best, f, indent=1)
    return 0


def cmd_median(a):
    """Keeps the run whose loadgen figure `key` is the median of the runs
    (short scenarios are noisy on their own), with every run's figure."""
    runs = load_runs(a.files)
    ok = [r for r in runs if lg_get(r, a.key) is not None]
    if not ok:
        if not runs:
            return 1
        ok = runs  # no figure anywhere: keep one, its error says why
    ok.sort(key=lambda r: lg_get(r, a.key) or 0)
    mid = dict(ok[(len(ok) - 1) // 2])
    mid["runs"] = [{a.key: lg_get(r, a.key), "log": r.get("log")} for r in runs]
    with open(a.out, "w") as f:
        json.dump(mid, f, indent=1)
    return 0


def lg_get(r, key):
    return num(((r or {}).get("lg") or {}).get(key))


def own_get(r, key):
    return num(((r or {}).get("own") or {}).get(key))


# Each metric: (label, function(result, params) -> (value, footnote mark), format, "hi"/"lo" better)
def metric_lg(key):
    return lambda r, p: (lg_get(r, key), "")


def metric_ramp_max(r, p):
    # a ramp that ended before the server saturated gives a lower bound; one
    # that failed on a stall (server idle) may understate the server
    lg = (r or {}).get("lg") or {}
    marks = "≥" if lg.get("saturated") is False else ("*" if stalled(r) else "")
    lg_cpu = lg_get(r, "loadgen_cpu_pct")
    if lg_cpu is not None and lg_cpu >= LOADGEN_BUSY_PCT:
        marks += "‡"
    return lg_get(r, "delivered_per_s"), marks


def metric_cpu(key):
    # the loadgen's figure (its measurement window) or, when it gives none,
    # ours from /proc over the whole run, marked with a dagger
    def f(r, p):
        v = lg_get(r, key)
        if v is not None:
            return v, ""
        v = own_get(r, key)
        return v, ("†" if v is not None else "")
    return f


def metric_rss_mib(r, p):
    v = lg_get(r, "server_rss_kb")
    mark = ""
    if v is None:
        v, mark = own_get(r, "server_rss_peak_kb"), "†"
    return (v / 1024 if v is not None else None), (mark if v is not None else "")


def metric_rss_per_conn(r, p):
    v = lg_get(r, "server_bytes_per_conn")  # the loadgen's: (connected - before) / connections
    if v is not None:
        return v / 1024, ""
    rss, mark = metric_rss_mib(r, p)
    base = own_get(r, "server_rss_before_kb")
    conns = lg_get(r, "conns") or p.get("conns")
    if rss is None or base is None or not conns:
        return None, ""
    return (rss * 1024 - base) / conns, mark


def metric_cpu_ns_per_msg(r, p):
    """Server CPU per delivered message (ns) at the ramp's best step: the
    figure that decides when the load generator is near its limit too."""
    cpu, d = lg_get(r, "server_cpu_pct"), lg_get(r, "delivered_per_s")
    if cpu is None or not d:
        return None, ""
    return cpu / 100 * 1e9 / d, ""


def metric_cpu_us_per_handshake(r, p):
    cpu, h = lg_get(r, "server_cpu_pct"), lg_get(r, "handshakes_per_s")
    if cpu is None or not h:
        return None, ""
    return cpu / 100 * 1e6 / h, ""


def metric_vs_one_worker(r, p):
    """CPU per message with two workers divided by the one-worker run's."""
    two, _ = metric_cpu_ns_per_msg(r, p)
    one_r = load(p["dir"], "tickgate", "fanout")
    one, _ = metric_cpu_ns_per_msg(one_r, p) if one_r else (None, "")
    return (two / one if two and one else None), ""




def metric_sum(*keys):
    def f(r, p):
        vs = [lg_get(r, k) for k in keys]
        return (None if any(v is None for v in vs) else sum(vs)), ""
    return f


def metric_compressed(r, p):
    return lg_get(r, "compressed_rx"), ""


def metric_conns(r, p):
    return lg_get(r, "conns"), ""


def in_scen(scen, fn):
    """The same server's figure fn in another scenario of the run."""
    def f(r, p):
        other = load(p["dir"], p["server"], scen)
        return fn(other, p) if other and not other.get("skipped") else (None, "")
    return f


def ratio_to_plain(plain_scen, fn):
    """A scenario's figure fn divided by the same server's in plain_scen."""
    def f(r, p):
        tls, _ = fn(r, p)
        plain, _ = in_scen(plain_scen, fn)(r, p)
        return (tls / plain if tls and plain else None), ""
    return f


# CPU per message with permessage-deflate divided by the same server's
# plain fan-out's (tickgate's target: <= 1.2, compression done once).
metric_vs_plain = ratio_to_plain("fanout", metric_cpu_ns_per_msg)


def metric_sustained(r, p):
    """The rate a sustain run held; none when even its last step down failed."""
    return (lg_get(r, "delivered_per_s") if lg_get(r, "held") else None), ""


def metric_resumed_pct(r, p):
    n, res = lg_get(r, "conns"), lg_get(r, "tls_resumed")
    return (100 * res / n if n and res is not None else None), ""


FMT = {
    "int": lambda v: f"{v:,.0f}",
    "f1": lambda v: f"{v:,.1f}",
    "f2": lambda v: f"{v:,.2f}",
}


def scenario_rows(params):
    def P(k, d="?"):
        v = params.get(k, d)
        return f"{int(v):,}" if str(v).isdigit() else v
    cpu = [("server CPU %", metric_cpu("server_cpu_pct"), "f1", "lo"),
           ("loadgen CPU %", metric_cpu("loadgen_cpu_pct"), "f1", None)]
    rows = [
        ("fanout", f"fan-out: {P('fanout_conns')} subscribers x 1 symbol, rate ramped to max", {}, [
            ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
            ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
            ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
        ] + cpu),
        ("sustain", f"fan-out sustained: the ramp's best step held for {P('latency_duration')} s at a fixed rate, "
                    f"stepped down 1.25x until it holds (>= 95% delivered, p99 <= 100 ms)", {}, [
            ("delivered msgs/s held", metric_sustained, "int", "hi"),
            ("steps down from the ramp's best", metric_lg("steps_down"), "int", "count"),
            ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
            ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
        ] + cpu),
        ("fanout2w", "fan-out as above, tickgate with 2 workers on the same pinned core", {}, [
            ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
            ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
            ("CPU per msg, 2 workers / 1 worker", metric_vs_one_worker, "f2", "lo"),
        ] + cpu),
        ("fanoutz", "fan-out as above with permessage-deflate, every tick compressed (uWS: SHARED_COMPRESSOR)", {}, [
            ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
            ("compressed frames received", metric_compressed, "int", None),
            ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
            ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
            ("CPU per msg, deflate / plain fan-out", metric_vs_plain, "f2", "lo"),
        ] + cpu),
        ("market", f"market: {P('market_conns')} subscribers, {P('market_symbols')} symbols x {P('market_per')} "
                   f"each, zipf, rate ramped to max", {}, [
            ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
            ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
            ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
        ] + cpu),
        ("market2c", "market as above on both cores, nothing pinned: tickgate with 2 workers, the reference "
                     "servers single-threaded, the loadgen sharing the cores", {}, [
            ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
            ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
            ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
        ] + cpu),
        ("latency", f"latency: {P('fanout_conns')} subscribers x 1 symbol at a fixed {P('latency_rate')} ticks/s "
                    f"(half the weakest fan-out max, ws left out)", {}, [
            ("p50 us", metric_lg("p50_us"), "int", "lo"),
            ("p99 us", metric_lg("p99_us"), "int", "lo"),
            ("p99.9 us", metric_lg("p999_us"), "int", "lo"),
            ("max us", metric_lg("max_us"), "int", "lo"),
            ("delivered msgs/s", metric_lg("delivered_per_s"), "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
        ] + cpu),
    ]
    def if_delivered(fn):  # a latency with nothing delivered in the window is not a figure
        def f(r, p):
            return fn(r, p) if lg_get(r, "delivered") else (None, "")
        return f
    rows.append(("sat_1.2", f"saturation: {P('fanout_conns')} subscribers x 1 symbol at a fixed 0.8x the last "
                            f"passing and 1.2x the first failing step of each server's own fan-out ramp (this run)",
                 {}, [
        ("p99 us at 0.8x max", in_scen("sat_0.8", if_delivered(metric_lg("p99_us"))), "int", "lo"),
        ("p99 us at 1.2x max", if_delivered(metric_lg("p99_us")), "int", "lo"),
        ("p99 at 1.2x / p99 at 0.8x", ratio_to_plain("sat_0.8", if_delivered(metric_lg("p99_us"))), "f2", "lo"),
        ("p99.9 us at 1.2x max", if_delivered(metric_lg("p999_us")), "int", "lo"),
        ("delivered msgs/s at 1.2x", metric_lg("delivered_per_s"), "int", "hi"),
        ("delivered % of published at 1.2x", lambda r, p: (
            100 * lg_get(r, "all_delivered") / lg_get(r, "all_expected")
            if lg_get(r, "all_expected") and lg_get(r, "all_delivered") is not None else None, ""), "f1", None),
        ("server RSS MiB at 1.2x (end)", metric_rss_mib, "f1", "lo"),
        ("server RSS high-water MiB at 1.2x", lambda r, p: (
            lg_get(r, "server_hwm_kb") / 1024 if lg_get(r, "server_hwm_kb") else None, ""), "f1", "lo"),
    ] + cpu))
    for i, n in enumerate(str(params.get("idle_conns", "")).split(), 1):
        rows.append((f"idle{i}", f"idle: {int(n):,} subscribed idle connections", {"conns": int(n)}, [
            ("connections held", metric_conns, "int", "hi"),
            ("server RSS MiB", metric_rss_mib, "f1", "lo"),
            ("RSS per connection KiB", metric_rss_per_conn, "f2", "lo"),
            ("server CPU %", metric_cpu("server_cpu_pct"), "f1", "lo"),
        ]))
    rows.append(("storm", f"handshake storm: {P('storm_conns')} handshakes, each with an HS256 JWT verified "
                          f"(median of {P('storm_runs', 3)} runs)", {}, [
        ("handshakes/s", metric_lg("handshakes_per_s"), "int", "hi"),
        ("handshake p99 ms", metric_lg("handshake_p99_ms"), "f2", "lo"),
        ("server CPU us per handshake", metric_cpu_us_per_handshake, "f1", "lo"),
    ] + cpu))
    rows.append(("storm_paced", f"handshake storm paced: {P('storm_conns')} handshakes started at "
                                f"{P('storm_paced_rate')}/s for every server (median p99 of {P('storm_runs', 3)} runs)",
                 {}, [
        ("handshakes/s", metric_lg("handshakes_per_s"), "int", "hi"),
        ("handshake p50 ms", metric_lg("handshake_p50_ms"), "f2", "lo"),
        ("handshake p99 ms", metric_lg("handshake_p99_ms"), "f2", "lo"),
        ("server CPU us per handshake", metric_cpu_us_per_handshake, "f1", "lo"),
    ] + cpu))
    tls = "TLS 1.3, AES-128-GCM, one self-signed P-256 certificate; uWS.js: SSLApp"
    rows.append(("fanout_tls", f"fan-out over wss:// ({tls}): {P('fanout_conns')} subscribers x 1 symbol, "
                               f"rate ramped to max", {}, [
        ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
        ("lost", metric_lg("lost"), "int", "lo"),
        ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
        ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
        ("CPU per msg, wss / plain fan-out", ratio_to_plain("fanout", metric_cpu_ns_per_msg), "f2", "lo"),
    ] + cpu))
    n = params.get("idle_tls_conns")
    if str(n).isdigit():
        rows.append(("idle_tls", f"idle over wss://: {int(n):,} subscribed idle TLS connections", {"conns": int(n)}, [
            ("connections held", metric_conns, "int", "hi"),
            ("server RSS MiB", metric_rss_mib, "f1", "lo"),
            ("RSS per connection KiB", metric_rss_per_conn, "f2", "lo"),
            ("RSS per connection, wss / plain idle", ratio_to_plain("idle1", metric_rss_per_conn), "f2", "lo"),
            ("server CPU %", metric_cpu("server_cpu_pct"), "f1", "lo"),
        ]))
    rows.append(("storm_tls", f"TLS handshake storm: {P('storm_conns')} wss:// handshakes resuming one session "
                              f"ticket, each with an HS256 JWT verified (median of {P('storm_runs', 3)} runs)", {}, [
        ("handshakes/s", metric_lg("handshakes_per_s"), "int", "hi"),
        ("handshakes resumed %", metric_resumed_pct, "f1", "hi"),
        ("server CPU us per handshake", metric_cpu_us_per_handshake, "f1", "lo"),
    ] + cpu))
    mix = (f"{P('mix_conns')} subscribers on {P('mix_symbols')} symbols at a fixed {P('mix_rate')} ticks/s "
           f"(tickgate only)")
    rows.append(("mix_rt", f"entitlements, baseline: {mix}, all real-time", {}, [
        ("delivered msgs/s", metric_lg("delivered_per_s"), "int", "hi"),
        ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
    ] + cpu))
    rows.append(("mix", f"entitlements: {mix}, a third real-time, a third throttled to 2/s, "
                        f"a third delayed 1 s", {}, [
        ("delivered msgs/s", metric_lg("delivered_per_s"), "int", "hi"),
        ("delayed ticks delivered (whole run)", metric_lg("delayed_rx"), "int", None),
        ("server CPU ns per msg", metric_cpu_ns_per_msg, "int", "lo"),
        ("CPU per msg, mix / all real-time", ratio_to_plain("mix_rt", metric_cpu_ns_per_msg), "f2", "lo"),
    ] + cpu))
    for scen, what in (("nodes1", "one node alone"), ("nodes2r", "2 nodes on one Redis"),
                       ("nodes2c", "2 nodes on a 3-shard Redis Cluster")):
        rows.append((scen, f"multi-node market: {P('nodes_conns')} subscribers, {P('market_symbols')} symbols x "
                           f"{P('market_per')} each, zipf, ramped; {what}: subscribers split over the nodes, the "
                           f"publisher on the last; nothing pinned (tickgate only)", {}, [
            ("delivered msgs/s (max)", metric_ramp_max, "int", "hi"),
            ("lost", metric_lg("lost"), "int", "lo"),
            ("p99 latency us", metric_lg("p99_us"), "int", "lo"),
            ("server CPU ns per msg (all nodes)", metric_cpu_ns_per_msg, "int", "lo"),
            ("Redis CPU % (all shards, whole run)", lambda r, p: (own_get(r, "redis_cpu_pct"), ""), "f1", "lo"),
        ] + cpu))
    rows.append(("recovery", f"recovery storm: {P('recovery_conns')} clients drop, miss {P('recovery_gap')} ticks on "
                             f"each of {P('recovery_symbols')} symbols and reconnect at once with recover; "
                             f"{P('recovery_steady')} steady subscribers (tickgate only)", {}, [
        ("clients live again", metric_lg("recover_live"), "int", "hi"),
        ("time until all live ms", metric_lg("recover_all_live_ms"), "f1", "lo"),
        ("time until live p50 ms", metric_lg("recover_live_p50_ms"), "f1", "lo"),
        ("symbols recovered", metric_lg("recover_symbols_recovered"), "int", "hi"),
        ("symbols not recovered (snapshot)", metric_lg("recover_symbols_missed"), "int", "lo"),
        ("gaps + duplicates across the join", metric_sum("recover_gaps", "recover_dups"), "int", "lo"),
        ("steady p99 before us", metric_lg("steady_p99_before_us"), "int", "lo"),
        ("steady p99 during the storm us", metric_lg("steady_p99_storm_us"), "int", "lo"),
    ] + cpu))
    return rows


def machine_info(params):
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            info["cpu"] = m.group(1).strip() if m else "?"
    except OSError:
        info["cpu"] = "?"
    info["cores"] = os.cpu_count()
    info["kernel"] = platform.release()

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    info["node"] = out([params.get("node", "node"), "--version"])
    for pkg in ("ws", "uwebsockets"):
        try:
            with open(os.path.join(ROOT, "bench/ref/node_modules", pkg, "package.json")) as f:
                info[pkg] = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            info[pkg] = "?"
    info["tickgate"] = re.sub(r"^tickgate\s*", "", out([params.get("tickgate_bin", "build/tickgate"), "--version"]))
    info["git"] = out(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    return info


def cmd_table(a):
    params = dict(p.split("=", 1) for p in a.param)
    servers = params.get("servers", "tickgate uws ws").split()
    cols = [SERVER_NAMES.get(s, s) for s in servers]
    ratio_cols = [(o, f"tickgate/{SERVER_NAMES[o]}") for o in ("uws", "ws") if "tickgate" in servers and o in servers]
    header = ["metric"] + cols + [c for _, c in ratio_cols]
    sections, raw, notes = [], {}, []
    used = set()  # footnote marks that appear in the table
    for scen, title, extra, metrics in scenario_rows(params):
        res = {s: load(a.dir, s, scen) for s in servers}
        if all(r is None for r in res.values()):
            continue
        raw[scen] = res
        lines = []
        for label, fn, fmt, better in metrics:
            vals, marks, cells = {}, {}, []
            for s in servers:
                r = res[s]
                if r is None:
                    cells.append("-")
                    continue
                if r.get("skipped"):
                    cells.append("skipped")
                    continue
                v, mark = fn(r, dict(params, dir=a.dir, server=s, **extra))
                vals[s], marks[s] = v, mark
                if v is None:
                    cell = "n/a"
                else:
                    cell = ("≥" if "≥" in mark else "") + FMT[fmt](v) + mark.replace("≥", "")
                    used.update(mark)
                if r.get("error") and v is not None:
                    cell += " !"
                cells.append(cell)
            for o, _ in ratio_cols:
                t, v = vals.get("tickgate"), vals.get(o)
                tb, ob = "≥" in marks.get("tickgate", ""), "≥" in marks.get(o, "")
                bound = {(True, False): "≥", (False, True): "≤"}.get((tb, ob), "")
                if t is None or not v or better == "count":  # a count of decisions has no ratio
                    cells.append("n/a")
                elif tb and ob:
                    cells.append("both ≥")  # neither saturated: no ratio
                else:
                    cells.append(f"{bound}{t / v:.2f}x")
            arrow = {"hi": " (higher better)", "lo": " (lower better)"}.get(better, "") if better else ""
            lines.append([label + arrow] + cells)
        for s in servers:
            r = res[s]
            if r and r.get("skipped"):
                notes.append(f"{scen} / {SERVER_NAMES.get(s, s)}: skipped: {r['skipped']}")
            elif r and r.get("error"):
                notes.append(f"{scen} / {SERVER_NAMES.get(s, s)}: {r['error']} (log: {r.get('log', '?')})")
        sections.append((title, lines))

    info = machine_info(params)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    mode = "QUICK=1 (shrunk scenarios)" if params.get("quick") == "1" else "full"
    pins = f"servers pinned to CPU {params.get('server_cpu', '?')}, loadgen to CPU {params.get('loadgen_cpu', '?')}"
    foot = ["ratios are tickgate's figure divided by the other server's, whichever way is better for that metric."
            ] if ratio_cols else []
    if "≥" in used:
        foot.append("≥ the ramp ended (step limit) before this server saturated: its maximum is at least this.")
    if "*" in used:
        foot.append(f"* the ramp's failing step found the server below {STALL_CPU_PCT}% CPU: delivery stalled "
                    "(transport), the server was not saturated; even after RAMP_RETRIES this may understate it.")
    if "‡" in used:
        foot.append(f"‡ the loadgen used {LOADGEN_BUSY_PCT}% or more of its core at this step: the figure may be "
                    "the load generator's limit rather than the server's.")
    if "†" in used:
        foot.append("† the loadgen reported no such figure: measured by run.sh from /proc over the whole "
                    "loadgen run (warm-up and connection set-up included).")
    if any("skipped:" not in n for n in notes):
        foot.append("! the run had a problem (see below); the figure may be partial.")

    # plain text
    body = [["  " + l[0]] + l[1:] for _, ls in sections for l in ls]
    width = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]

    def fmt_line(row):
        return "  ".join(str(c).ljust(width[0]) if i == 0 else str(c).rjust(width[i]) for i, c in enumerate(row))
    text = [f"tickgate benchmark, {mode}, {when}",
            f"{info['cpu']}, {info['cores']} cores, Linux {info['kernel']}; {pins}; "
            f"load average at start {params.get('loadavg', '?')}",
            f"tickgate {info['tickgate']} ({info['git']}, --server.workers=1); node {info['node']}, "
            f"uWebSockets.js (npm uwebsockets {info['uwebsockets']}), ws {info['ws']}", ""]
    text.append(fmt_line(header))
    text.append("  ".join("-" * w for w in width))
    for title, lines in sections:
        text.append(title)
        text.extend(fmt_line(["  " + l[0]] + l[1:]) for l in lines)
    text.append("")
    text.extend(foot)
    text.extend(notes)
    print("\n".join(text))

    # markdown
    md = ["# tickgate benchmark: latest run", "",
          f"- run: {when}, {mode}, by `bench/run.sh`",
          f"- machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}",
          f"- pinning: {pins} (`taskset`); load average at start {params.get('loadavg', '?')}",
          f"- tickgate {info['tickgate']} (`{info['git']}`), `--server.workers=1`",
          f"- uWebSockets.js: npm `uwebsockets` {info['uwebsockets']} on node {info['node']} (bench/ref/uws-server.js)",
          f"- ws {info['ws']} on node {info['node']} (bench/ref/ws-server.js)", "",
          "| " + " | ".join(header) + " |",
          "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for title, lines in sections:
        md.append(f"| **{title}** |" + " |" * (len(header) - 1))
        md.extend("| " + " | ".join(str(c) for c in l) + " |" for l in lines)
    md.append("")
    md.extend(f"- {n}" for n in foot + notes)
    md.append("")
    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(md))
    with open(a.json, "w") as f:
        json.dump({"when": when, "params": params, "machine": info, "results": raw}, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--server-pid", type=int, required=True)
    r.add_argument("--redis-pid", type=int, action="append", default=[],
                   help="a redis-server whose CPU over the run is recorded (repeatable: summed)")
    r.add_argument("--timeout", type=float, required=True)
    r.add_argument("--log", required=True)
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    mr = sub.add_parser("maxrate")
    mr.add_argument("--file", required=True)
    mr.add_argument("--conns", type=int, required=True)
    mr.add_argument("--factor", type=float, required=True)
    mr.add_argument("--pass", dest="last_pass", action="store_true")
    ho = sub.add_parser("holds")
    ho.add_argument("file")
    mk = sub.add_parser("mark")
    mk.add_argument("--file", required=True)
    mk.add_argument("--set", action="append", default=[])
    q = sub.add_parser("rate")
    q.add_argument("--dir", required=True)
    q.add_argument("--servers", required=True)
    q.add_argument("--conns", type=int, required=True)
    q.add_argument("--default", type=int, required=True)
    t = sub.add_parser("table")
    t.add_argument("--dir", required=True)
    t.add_argument("--md", required=True)
    t.add_argument("--json", required=True)
    t.add_argument("--param", action="append", default=[])
    st = sub.add_parser("stalled")
    st.add_argument("file")
    md = sub.add_parser("median")
    md.add_argument("--out", required=True)
    md.add_argument("--key", required=True)
    md.add_argument("files", nargs="+")
    b = sub.add_parser("best")
    b.add_argument("--out", required=True)
    b.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd_name == "run":
        if a.cmd and a.cmd[0] == "--":
            a.cmd = a.cmd[1:]
        if not a.cmd:
            ap.error("run needs the loadgen command after --")
        return cmd_run(a)
    return {"rate": cmd_rate, "maxrate": cmd_maxrate, "table": cmd_table, "stalled": cmd_stalled, "best": cmd_best,
            "median": cmd_median, "holds": cmd_holds, "mark": cmd_mark}[a.cmd_name](a)


if __name__ == "__main__":
    sys.exit(main())
