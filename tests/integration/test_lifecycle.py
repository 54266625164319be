"""Process lifecycle: graceful shutdown on SIGTERM/SIGINT, configuration
layers and errors, and several worker threads serving real clients."""
import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import child_env, describe_rc, tickgate_bin
from wsraw import OP_TEXT, WSRaw, http_request

GOING_AWAY = 1001


def run_tickgate(args, env=None, timeout=10):
    """Runs the binary to completion; returns (rc, stdout, stderr). A process
    still running after timeout (e.g. one that wrongly accepted a bad
    setting and started serving) is killed and fails the test."""
    args = [tickgate_bin()] + list(args)
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=child_env(env), start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail("`%s` still running after %d s (expected it to exit)\nstdout: %s\nstderr: %s"
                    % (" ".join(args[1:]), timeout, out.decode(errors="replace")[-2000:],
                       err.decode(errors="replace")[-2000:]), pytrace=False)
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def wait_exit(gw, timeout):
    t0 = time.monotonic()
    rc = gw.wait(timeout)
    assert rc is not None, "tickgate did not exit within %.1f s of the signal\n%s" % (timeout, gw.output())
    assert rc == 0, "tickgate %s after the signal\n%s" % (describe_rc(rc), gw.output())
    return time.monotonic() - t0


def read_connected(ws):
    f = ws.recv_frame()
    assert f.opcode == OP_TEXT, f
    msg = json.loads(f.payload)
    assert msg.get("type") == "connected", msg


# ---------------------------------------------------------------------------
# graceful shutdown
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_clients_1001_and_exits_0(gateway, clients, sig):
    gw = gateway("--server.shutdown_grace_ms=2000")
    e1, e2 = clients.ws(gw, "/echo"), clients.ws(gw, "/echo")
    js = clients.ws(gw, "/ws")
    read_connected(js)
    for i, e in enumerate((e1, e2)):  # both echo connections are fully up
        e.send_frame(OP_TEXT, b"before %d" % i)
        e.expect_frame(OP_TEXT, b"before %d" % i)
    t0 = time.monotonic()
    gw.send_signal(sig)
    for ws in (e1, e2, js):
        ws.expect_close(GOING_AWAY, timeout=3)
    rc = gw.wait(max(0.1, 5 - (time.monotonic() - t0)))
    assert rc is not None, "no exit within 5 s of %s\n%s" % (sig.name, gw.output())
    assert rc == 0, "%s after %s\n%s" % (describe_rc(rc), sig.name, gw.output())


def test_shutdown_without_clients_is_prompt(gateway):
    gw = gateway("--server.shutdown_grace_ms=5000")
    assert http_request(gw.host, gw.port, "GET", "/health").status == 200
    gw.send_signal(signal.SIGTERM)
    elapsed = wait_exit(gw, 4)
    assert elapsed < 4


def test_unresponsive_client_does_not_hold_shutdown(gateway, clients):
    """A client that never answers the close frame: the process still exits 0
    within the grace period (plus slack)."""
    gw = gateway("--server.shutdown_grace_ms=2000")
    ws = clients.ws(gw, "/echo")
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    ws.expect_close(GOING_AWAY, reply=False, timeout=3, tcp_timeout=5)
    rc = gw.wait(max(0.1, 5 - (time.monotonic() - t0)))
    assert rc == 0, "%s\n%s" % (describe_rc(rc), gw.output())


def test_no_new_connections_after_sigterm(gateway, clients):
    gw = gateway("--server.shutdown_grace_ms=3000")
    ws = clients.ws(gw, "/echo")
    gw.send_signal(signal.SIGTERM)
    # Awaiting the 1001 proves the server has acted on the signal; we hold
    # back our close reply so the process stays in its grace period.
    f = ws.recv_frame(timeout=3)
    assert f.opcode == 0x8 and f.payload[:2] == GOING_AWAY.to_bytes(2, "big"), f
    outcome = None
    try:
        s = socket.create_connection((gw.host, gw.port), timeout=3)
    except OSError as e:
        outcome = "connect failed: %s" % e
    else:
        try:
            s.settimeout(3)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    break
            if not data:
                outcome = "closed without response"
            else:
                # Plain HTTP keeps answering while the node drains
                # (PROTOCOL.md section 15); once it stops accepting: 503.
                status = int(data.split(b" ", 2)[1])
                assert status in (200, 503), "a new request after SIGTERM got %r" % data[:300]
                outcome = str(status)
        except socket.timeout:
            pytest.fail("a new connection after SIGTERM was neither refused, closed nor answered 503 within 3 s")
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
            outcome = "reset"
        finally:
            s.close()
    assert outcome is not None
    print("new connection after SIGTERM:", outcome)
    try:
        ws.send_close(GOING_AWAY)
    except OSError:
        pass
    rc = gw.wait(5)
    assert rc == 0, "%s\n%s" % (describe_rc(rc), gw.output())


# ---------------------------------------------------------------------------
# command line and configuration
# ---------------------------------------------------------------------------

def test_help_lists_keys_with_defaults():
    rc, out, err = run_tickgate(["--help"])
    assert rc == 0, err
    for key in ("server.listen", "server.workers", "server.ws_path", "server.echo_path",
                "server.handshake_timeout_ms", "server.shutdown_grace_ms", "server.max_http_body_bytes",
                "limits.max_connections", "limits.max_message_bytes"):
        i = out.find(key)
        assert i >= 0, "--help does not list %s:\n%s" % (key, out)
        assert "default" in out[i:i + 200].lower(), "--help shows no default for %s:\n%s" % (key, out[i:i + 200])


def test_version():
    rc, out, err = run_tickgate(["--version"])
    assert rc == 0, err
    assert out.startswith("tickgate "), out


@pytest.mark.parametrize("args,needle", [
    (["--server.bogus=1"], "server.bogus"),
    (["--nosuch.key=1"], "nosuch.key"),
    (["--server.workers=abc"], "server.workers"),
    (["--server.workers=-1"], "server.workers"),
    (["--limits.max_message_bytes=1k"], "limits.max_message_bytes"),
    (["--server.handshake_timeout_ms="], "server.handshake_timeout_ms"),
    (["--server.listen=nonsense"], "server.listen"),
    (["--server.listen=127.0.0.1:70000"], "server.listen"),
    (["--server.ws_path=noslash"], "server.ws_path"),
    (["--server.echo_path=/ws"], "server.echo_path"),
    (["positional"], "positional"),
    (["--config=/nonexistent/tickgate.ini"], "/nonexistent/tickgate.ini"),
], ids=["unknown-key", "unknown-section", "workers-abc", "workers-negative", "size-with-suffix", "empty-int",
        "listen-no-port", "listen-port-range", "path-no-slash", "echo-equals-ws", "positional", "missing-file"])
def test_bad_command_line_rejected(args, needle):
    rc, out, err = run_tickgate(["--server.listen=127.0.0.1:0"] + args if "listen" not in args[0] else args)
    assert rc != 0, "accepted %s" % args
    assert needle in err, "stderr does not name %r:\n%s" % (needle, err)
    assert "listening" not in out


@pytest.mark.parametrize("args,needle", [
    (["--server.static_dir=/nonexistent-tickgate-web"], "server.static_dir"),
    (["--server.static_dir=/etc/hostname"], "server.static_dir"),
    (["--server.static_dir="], "server.static_dir"),
    (["--limits.heartbeat_interval_s=30", "--limits.heartbeat_timeout_s=29"], "limits.heartbeat_timeout_s"),
    (["--security.medium_violations=7", "--security.high_violations=6"], "security.medium_violations"),
    (["--security.high_violations=65536"], "security.high_violations"),
    (["--limits.max_subscriptions_per_client=100001"], "limits.max_subscriptions_per_client"),
], ids=["static-dir-missing", "static-dir-a-file", "static-dir-empty", "heartbeat-timeout-below-interval",
        "medium-above-high", "violations-past-16-bits", "subscriptions-past-the-bound"])
def test_settings_the_server_cannot_honour_rejected(args, needle):
    """Issue 13 items 6 and 15: values each within their own bounds that
    the server could not honour (a missing demo directory, an empty one
    serving the whole file system, a timeout before the first ping, a
    threat level never reached, counts past their fields) stop the start
    with a message naming the key."""
    rc, out, err = run_tickgate(["--server.listen=127.0.0.1:0"] + args)
    assert rc == 2, "accepted %s (rc %s)" % (args, rc)
    assert needle in err, "stderr does not name %r:\n%s" % (needle, err)
    assert "listening" not in out


@pytest.mark.parametrize("var", ["TICKGATE_SERVER_BOGUS", "TICKGATE_LIMITS_MAX_MESSAGES"])
def test_unknown_environment_variable_rejected(var):
    rc, out, err = run_tickgate(["--server.listen=127.0.0.1:0"], env={var: "1"})
    assert rc != 0, "accepted %s=1" % var
    assert var in err or var.split("_", 2)[2].lower() in err.lower(), "stderr does not name %s:\n%s" % (var, err)


def test_bad_environment_value_rejected():
    rc, out, err = run_tickgate(["--server.listen=127.0.0.1:0"], env={"TICKGATE_SERVER_WORKERS": "many"})
    assert rc != 0
    assert "server.workers" in err or "TICKGATE_SERVER_WORKERS" in err, err


@pytest.mark.parametrize("ini,needle", [
    ("[server]\nbogus = 1\n", "bogus"),
    ("[nosuch]\nlisten = 127.0.0.1:0\n", "nosuch"),
    ("[server]\nworkers = lots\n", "server.workers"),
], ids=["unknown-key", "unknown-section", "bad-value"])
def test_bad_config_file_rejected(tmp_path, ini, needle):
    path = tmp_path / "tickgate.ini"
    path.write_text(ini)
    rc, out, err = run_tickgate(["--config", str(path), "--server.listen=127.0.0.1:0"])
    assert rc != 0, "accepted config file:\n%s" % ini
    assert needle in err, "stderr does not name %r:\n%s" % (needle, err)


def upgrade_status(gw, path):
    ws = WSRaw(gw.host, gw.port)
    try:
        return ws.handshake(path).status
    finally:
        ws.close()


def test_env_beats_file(gateway, tmp_path):
    path = tmp_path / "tickgate.ini"
    path.write_text("[server]\nlisten = 127.0.0.1:1\n")
    gw = gateway("--config=%s" % path, listen=None, env={"TICKGATE_SERVER_LISTEN": "127.0.0.1:0"})
    assert gw.port not in (0, 1), "listening on port %d: the file's value won over the environment" % gw.port
    assert http_request(gw.host, gw.port, "GET", "/health").status == 200


def test_file_beats_default_and_env_beats_file_for_paths(gateway, tmp_path):
    path = tmp_path / "tickgate.ini"
    path.write_text("[server]\necho_path = /from-file\nws_path = /ws-file\n")
    gw = gateway("--config", str(path), echo_path=None, env={"TICKGATE_SERVER_ECHO_PATH": "/from-env"})
    assert upgrade_status(gw, "/from-env") == 101
    assert upgrade_status(gw, "/from-file") == 404
    assert upgrade_status(gw, "/ws-file") == 101
    assert upgrade_status(gw, "/ws") == 404


def test_flag_beats_env(gateway):
    gw = gateway("--server.echo_path=/e2", echo_path=None, env={"TICKGATE_SERVER_ECHO_PATH": "/e1"})
    assert upgrade_status(gw, "/e2") == 101
    assert upgrade_status(gw, "/e1") == 404


def test_flag_beats_file_and_env(gateway, tmp_path):
    path = tmp_path / "tickgate.ini"
    path.write_text("[limits]\nmax_message_bytes = 200\n")
    gw = gateway("--config=%s" % path, "--limits.max_message_bytes=300",
                 env={"TICKGATE_LIMITS_MAX_MESSAGE_BYTES": "250"})
    ws = WSRaw(gw.host, gw.port)
    try:
        ws.open("/echo")
        ws.send_frame(OP_TEXT, b"a" * 300)
        ws.expect_frame(OP_TEXT, b"a" * 300)
        ws.send_frame(OP_TEXT, b"a" * 301)
        ws.expect_close(1009)
    finally:
        ws.close()


# ---------------------------------------------------------------------------
# several workers, a real client library
# ---------------------------------------------------------------------------

def test_two_workers_50_concurrent_echo_clients(gateway):
    import websockets

    gw = gateway("--server.workers=2")
    uri = "ws://%s:%d/echo" % (gw.host, gw.port)
    n, rounds = 50, 5

    async def main():
        conns = await asyncio.gather(*[websockets.connect(uri, open_timeout=10, close_timeout=5, max_size=None)
                                       for _ in range(n)])
        try:
            # All 50 are open at once before any traffic.
            async def talk(i, ws):
                for r in range(rounds):
                    msg = "client %d round %d %s" % (i, r, "é" * (i + r))
                    await ws.send(msg)
                    assert await ws.recv() == msg
                    data = bytes([i, r]) * 100
                    await ws.send(data)
                    assert await ws.recv() == data

            await asyncio.gather(*[talk(i, ws) for i, ws in enumerate(conns)])
        finally:
            await asyncio.gather(*[ws.close() for ws in conns])
        for ws in conns:
            assert ws.close_code == 1000, ws.close_code

    asyncio.run(asyncio.wait_for(main(), timeout=30))
    tasks = os.listdir("/proc/%d/task" % gw.pid)
    assert len(tasks) >= 2, "--server.workers=2 but the process has %d thread(s)" % len(tasks)


def test_file_table_is_grown_at_start_for_the_allowed_connections(gateway):
    """The kernel grows a file table by doubling, and in a threaded process
    each growth waits an RCU grace period (a handshake crossing fd 256, 512,
    ... stalled its worker 10-20 ms): the table is sized once at start, for
    limits.max_connections + 256 descriptors (at most RLIMIT_NOFILE)."""
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(3000 + 256, soft)
    gw = gateway("--limits.max_connections=3000")
    with open("/proc/%d/status" % gw.pid) as f:
        fdsize = int(next(ln.split()[1] for ln in f if ln.startswith("FDSize:")))
    assert fdsize >= want, (fdsize, want)
