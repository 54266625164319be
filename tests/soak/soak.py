#!/usr/bin/python3
"""Soak test: tickgate under continuous connection churn while ticks flow.

Starts build/tickgate (simulator at --ticks per second, heartbeat 5 s /
timeout 15 s so half-open clients are reaped, per-IP limit lifted, audit
log on), runs tests/soak/soakdrv (--conns churning clients: connect,
subscribe, receive, then clean close / RST / FIN / mid-frame / half-open /
mid-handshake), and samples the server every --sample seconds: RSS, open
file descriptors, CPU time, /api/stats gauges.

It passes when:
  - the server stays up the whole time (and the driver never saw it refuse
    a TCP connection), clients were upgraded and received price updates;
  - after the warm-up (25 % of the run, at least 60 s: the per-symbol tick
    history fills first), the least-squares slope of RSS over time is within
    --max-slope kB/min (default: the larger of 1024 kB/min and 1 %/min of
    the mean RSS after warm-up);
  - once the driver has closed every socket, /api/stats connections_open,
    subscriptions and active_streams return to 0 and the number of open
    file descriptors returns to its value before the run (within 60 s);
  - tickgate_audit_events_dropped_total and tickgate_fanout_dropped_total
    stay 0;
  - SIGTERM ends the server with exit code 0 within 10 s.

    /usr/bin/python3 tests/soak/soak.py --bin build/tickgate \\
        --driver build/tests/soak/soakdrv --conns 10000 --seconds 600

A JSON report goes to --report (default build/soak-report.json)."""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LISTEN_RE = re.compile(r"tickgate listening on (\S+):(\d+)")
CLK = os.sysconf("SC_CLK_TCK")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def http_get(port, path, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def stats(port):
    st, body = http_get(port, "/api/stats")
    assert st == 200, (st, body[:200])
    return json.loads(body)


def metrics(port):
    st, body = http_get(port, "/metrics")
    assert st == 200, st
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def proc_status(pid):
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def slope_per_min(points):
    """Least-squares slope of (t seconds, value) in value per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    num = sum((t - mt) * (v - mv) for t, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60.0 * num / den if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--ticks", type=int, default=2000, help="feed.sim_ticks_per_s")
    ap.add_argument("--sources", type=int, default=8, help="client source addresses 127.0.0.2..")
    ap.add_argument("--ramp", type=int, default=2000, help="new connections per second at most")
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=None, help="seconds ignored for the RSS slope "
                    "(default: 25%% of the run, at least 60 s: per-symbol history rings, feed.history_size "
                    "ticks each, fill in history_size / (ticks per s / watched symbols) = ~51 s at the defaults)")
    ap.add_argument("--max-slope", type=float, default=None, help="kB/min")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--report", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("server_flags", nargs="*", help="extra tickgate flags (after --)")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    report_path = a.report or os.path.join(root, "build", "soak-report.json")
    warmup = a.warmup if a.warmup is not None else max(60.0, 0.25 * a.seconds)
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="tickgate-soak-")
    audit = os.path.join(tmp, "audit.log")
    args = [a.bin, "--server.listen=127.0.0.1:0", "--feed.sim_ticks_per_s=%d" % a.ticks,
            "--limits.max_connections_per_ip=100000000", "--limits.max_connects_per_ip_per_minute=100000000",
            "--limits.max_messages_per_minute=100000000", "--limits.heartbeat_interval_s=5",
            "--limits.heartbeat_timeout_s=15", "--limits.sweep_interval_s=1", "--audit.path=" + audit,
            "--security.blocks_file=" + os.path.join(tmp, "blocks.state"),
            "--server.workers=%d" % a.workers] + a.server_flags
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    t_start = time.monotonic()
    srv = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, preexec_fn=raise_nofile, start_new_session=True)
    lines = []
    listening = threading.Event()
    port_box = []

    def pump(stream, name):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            lines.append((name, line))
            m = LISTEN_RE.search(line)
            if m and not port_box:
                port_box.append(int(m.group(2)))
                listening.set()

    for st, nm in ((srv.stdout, "out"), (srv.stderr, "err")):
        threading.Thread(target=pump, args=(st, nm), daemon=True).start()
    if not listening.wait(15):
        srv.kill()
        print("soak: tickgate did not start:\n" + "".join(l for _, l in lines[-40:]))
        return 1
    port = port_box[0]
    pid = srv.pid
    stats(port)  # one request first: lazily opened descriptors are in the baseline
    time.sleep(0.5)
    base_fds = nfds(pid)
    base_rss = proc_status(pid)[0]
    print("soak: tickgate pid %d port %d, %d fds, RSS %d kB at start; %d connections for %d s, "
          "%d ticks/s, warm-up %.0f s" % (pid, port, base_fds, base_rss, a.conns, a.seconds, a.ticks, warmup),
          flush=True)

    drv = subprocess.Popen([a.driver, "--port", str(port), "--conns", str(a.conns), "--seconds", str(a.seconds),
                            "--sources", str(a.sources), "--ramp", str(a.ramp), "--seed", str(a.seed),
                            "--report", str(int(max(1, a.sample)))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=raise_nofile)
    drv_lines = []

    def pump_drv():
        for raw in iter(drv.stdout.readline, b""):
            try:
                drv_lines.append(json.loads(raw))
            except ValueError:
                drv_lines.append({"raw": raw.decode("utf-8", "replace")})
    threading.Thread(target=pump_drv, daemon=True).start()
    drv_err = []
    threading.Thread(target=lambda: drv_err.extend(iter(drv.stderr.readline, b"")), daemon=True).start()

    samples = []
    problems = []
    t0 = time.monotonic()
    cpu0 = cpu_s(pid)
    next_sample = t0
    while drv.poll() is None:
        if srv.poll() is not None:
            problems.append("tickgate exited during the soak (code %s)" % srv.returncode)
            drv.kill()
            break
        now = time.monotonic()
        if now >= next_sample:
            next_sample += a.sample
            rss, hwm = proc_status(pid)
            s = {"t": round(now - t0, 1), "rss_kb": rss, "hwm_kb": hwm, "fds": nfds(pid), "cpu_s": round(cpu_s(pid) - cpu0, 2)}
            try:
                g = stats(port)
                s.update(connections_open=g.get("connections_open"), subscriptions=g.get("subscriptions"),
                         active_streams=g.get("active_streams"))
            except (OSError, AssertionError, ValueError) as e:
                s["stats_error"] = str(e)
            d = drv_lines[-1] if drv_lines else {}
            s.update(drv_open=d.get("open"), drv_holding=d.get("holding"), drv_upgraded=d.get("upgraded"),
                     drv_updates=d.get("updates"))
            samples.append(s)
            print("  t=%5.0fs rss=%7d kB fds=%6d cpu=%6.1fs open=%s subs=%s streams=%s | driver open=%s hold=%s "
                  "upgraded=%s updates=%s" % (s["t"], rss, s["fds"], s["cpu_s"], s.get("connections_open"),
                                              s.get("subscriptions"), s.get("active_streams"), s["drv_open"],
                                              s["drv_holding"], s["drv_upgraded"], s["drv_updates"]), flush=True)
        time.sleep(0.2)
    drv_rc = drv.wait()
    run_s = time.monotonic() - t0
    final = next((d for d in reversed(drv_lines) if d.get("final")), drv_lines[-1] if drv_lines else {})

    # Back to idle: gauges and descriptors.
    settled = None
    idle_deadline = time.monotonic() + 60
    last = {}
    while srv.poll() is None and time.monotonic() < idle_deadline:
        try:
            g = stats(port)
            last = {"connections_open": g.get("connections_open"), "subscriptions": g.get("subscriptions"),
                    "active_streams": g.get("active_streams"), "fds": nfds(pid)}
            if (last["connections_open"] == 0 and last["subscriptions"] == 0 and last["active_streams"] == 0
                    and last["fds"] == base_fds):
                settled = round(time.monotonic() - t0 - run_s, 1)
                break
        except (OSError, AssertionError, ValueError):
            pass
        time.sleep(0.5)
    if settled is None:
        problems.append("not back to idle within 60 s after the driver ended: %r (fds at start %d)" % (last, base_fds))
    m = {}
    if srv.poll() is None:
        try:
            m = metrics(port)
        except (OSError, AssertionError, ValueError) as e:
            problems.append("/metrics failed: %s" % e)
    rss_end = proc_status(pid)[0] if srv.poll() is None else None
    audit_dropped = m.get("tickgate_audit_events_dropped_total")
    fanout_dropped = m.get("tickgate_fanout_dropped_total")
    if audit_dropped:
        problems.append("tickgate_audit_events_dropped_total = %d" % audit_dropped)
    if fanout_dropped:
        problems.append("tickgate_fanout_dropped_total = %d" % fanout_dropped)

    # SIGTERM: exit 0 within 10 s.
    t_term = time.monotonic()
    if srv.poll() is None:
        srv.send_signal(signal.SIGTERM)
    try:
        rc = srv.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.kill()
        rc = None
    term_s = round(time.monotonic() - t_term, 2)
    if rc != 0:
        problems.append("tickgate after SIGTERM: %s" % ("no exit within 10 s" if rc is None else "exit code %s" % rc))

    # RSS slope after warm-up.
    pts = [(s["t"], s["rss_kb"]) for s in samples if s["t"] >= warmup]
    slope = slope_per_min(pts)
    mean_rss = sum(v for _, v in pts) / len(pts) if pts else 0
    tolerance = a.max_slope if a.max_slope is not None else max(1024.0, 0.01 * mean_rss)
    if len(pts) < 3:
        problems.append("too few samples after the warm-up for a slope (%d)" % len(pts))
    elif abs(slope) > tolerance:
        problems.append("RSS slope %.0f kB/min after warm-up exceeds %.0f kB/min" % (slope, tolerance))
    if drv_rc != 0:
        problems.append("driver exit code %d (%s)" % (drv_rc, b"".join(drv_err).decode()[-500:]))
    if final.get("econnrefused"):
        problems.append("the server refused %d TCP connections" % final["econnrefused"])
    if not final.get("updates"):
        problems.append("clients received no price updates")
    crash = [l for _, l in lines if "AddressSanitizer" in l or "runtime error" in l or "Segmentation" in l]
    if crash:
        problems.append("sanitizer or crash output: %s" % crash[:3])

    audit_bytes = os.path.getsize(audit) if os.path.exists(audit) else 0
    report = {
        "conns": a.conns, "seconds": a.seconds, "ticks_per_s": a.ticks, "run_s": round(run_s, 1),
        "total_s": round(time.monotonic() - t_start, 1), "warmup_s": warmup,
        "rss_kb": {"start": base_rss, "after_warmup": pts[0][1] if pts else None,
                   "max": max((s["rss_kb"] for s in samples), default=None),
                   "end_of_churn": samples[-1]["rss_kb"] if samples else None, "idle_after": rss_end},
        "rss_slope_kb_per_min": round(slope, 1), "rss_slope_tolerance_kb_per_min": round(tolerance, 1),
        "fds": {"start": base_fds, "max": max((s["fds"] for s in samples), default=None), "after": last.get("fds")},
        "idle_after_s": settled, "gauges_after": last,
        "server_cpu_s": samples[-1]["cpu_s"] if samples else None,
        "audit_events_dropped": audit_dropped, "fanout_dropped": fanout_dropped, "audit_log_bytes": audit_bytes,
        "disconnections": {k: v for k, v in m.items() if k.startswith("tickgate_disconnections_total")},
        "sigterm_exit": rc, "sigterm_s": term_s, "driver": final, "problems": problems, "samples": samples,
    }
    os.makedirs(os.path.dirname(report_path), exist_ok=True)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    print("soak: %d connections, %.0f s: %s upgrades, %s price updates received, %s messages; ends %s; "
          "server closes %s" % (a.conns, run_s, final.get("upgraded"), final.get("updates"), final.get("msgs"),
                                final.get("ends"), final.get("server_close")))
    print("soak: RSS start %s kB, after warm-up %s kB, max %s kB, end %s kB; slope after warm-up %.0f kB/min "
          "(tolerance %.0f); fds %d -> max %s -> %s; idle again after %s s; SIGTERM exit %s in %.1f s"
          % (base_rss, report["rss_kb"]["after_warmup"], report["rss_kb"]["max"], report["rss_kb"]["end_of_churn"],
             slope, tolerance, base_fds, report["fds"]["max"], last.get("fds"), settled, rc, term_s))
    print("soak: report in %s" % report_path)
    if problems:
        print("soak: FAILED\n  " + "\n  ".join(problems))
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
