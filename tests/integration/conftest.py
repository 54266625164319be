"""Fixtures for tickgate's integration tests: start the real binary on a free
port, talk to it over sockets, stop it with SIGTERM and insist it exits 0.

TICKGATE_BIN names the binary (default: build/tickgate of this checkout)."""
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wsraw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
LISTEN_RE = re.compile(r"tickgate listening on (\S+):(\d+)")


def tickgate_bin():
    path = os.environ.get("TICKGATE_BIN") or os.path.join(ROOT, "build", "tickgate")
    if not os.access(path, os.X_OK):
        pytest.fail("tickgate binary not found at %s (build it with make, or set TICKGATE_BIN)" % path,
                    pytrace=False)
    return path


def child_env(extra=None):
    """The test runner's environment without any TICKGATE_* variable (the
    server rejects unknown ones), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    env.update(extra or {})
    return env


class Gateway:
    """One running tickgate process."""

    def __init__(self, args, env):
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=ROOT, start_new_session=True)
        self.pid = self.proc.pid
        self.host = self.port = None
        self.returncode = None
        self.killed = False
        self.start_failed = False  # already reported by wait_listening
        self._stdout, self._stderr = [], []
        self._lines = queue.Queue()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._stdout, self._lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr, None), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink, lines):
        # Keep draining the pipe for the whole life of the process so that a
        # chatty server never blocks on a full pipe.
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            sink.append(line)
            if lines is not None:
                lines.put(line)
        if lines is not None:
            lines.put(None)

    @property
    def stdout(self):
        return "".join(self._stdout)

    @property
    def stderr(self):
        return "".join(self._stderr)

    def output(self):
        return "--- stdout ---\n%s--- stderr ---\n%s" % (self.stdout[-4000:], self.stderr[-4000:])

    def wait_listening(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.start_failed = True
                self.kill()
                pytest.fail("tickgate printed no 'tickgate listening on HOST:PORT' within %.0f s\n%s"
                            % (timeout, self.output()), pytrace=False)
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.start_failed = True
                rc = self.proc.wait(timeout=STOP_TIMEOUT)
                self.returncode = rc
                self._join()
                pytest.fail("tickgate exited (code %s) before listening\n%s" % (rc, self.output()), pytrace=False)
            m = LISTEN_RE.search(line)
            if m:
                host = m.group(1)
                if host.startswith("[") and host.endswith("]"):
                    host = host[1:-1]
                self.host, self.port = host, int(m.group(2))
                return self

    @property
    def url(self):
        return "ws://%s:%d" % (self.host, self.port)

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None at the timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join()
        return self.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
        self.returncode = self.proc.wait()
        self._join()

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig (if still running) and waits; kills after timeout.
        Returns the exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait(timeout) is None:
                self.kill()
                return None
        else:
            self.returncode = self.proc.wait()
            self._join()
        return self.returncode

    def _join(self):
        for t in self._threads:
            t.join(timeout=2)


def describe_rc(rc):
    if rc is None:
        return "did not exit"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit code %d" % rc


@pytest.fixture
def gateway():
    """Factory: gateway(*flags, env=None) starts
    `$TICKGATE_BIN --server.listen=127.0.0.1:0 --server.echo_path=/echo *flags`,
    waits for its 'listening' line and returns a Gateway (.host .port .proc).
    listen=None / echo_path=None leave that default flag out; wait=False
    returns without waiting for the listening line. At teardown every
    gateway still running gets SIGTERM and must exit 0 within 10 s."""
    started = []
    binary = tickgate_bin()

    def start(*flags, env=None, listen="127.0.0.1:0", echo_path="/echo", wait=True):
        args = [binary]
        if listen is not None:
            args.append("--server.listen=%s" % listen)
        if echo_path is not None:
            args.append("--server.echo_path=%s" % echo_path)
        args += list(flags)
        gw = Gateway(args, child_env(env))
        started.append(gw)
        if wait:
            gw.wait_listening()
        return gw

    yield start

    problems = []
    for gw in reversed(started):
        already = gw.proc.poll() is not None
        rc = gw.stop()
        if rc != 0 and not gw.start_failed:
            what = "exited by itself with" if already else "after SIGTERM:"
            problems.append("tickgate %s %s (args %s)\n%s"
                            % (what, describe_rc(rc) if rc is not None else "no exit within %.0f s, killed"
                               % STOP_TIMEOUT, " ".join(gw.args[1:]), gw.output()))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def clients(gateway):
    """Factory for raw connections that are closed at teardown (before the
    gateways stop, as this fixture depends on `gateway`).
    clients.ws(gw, path) -> WSRaw after a successful upgrade;
    clients.raw(gw) -> WSRaw connected but without handshake;
    clients.http(gw) -> HTTPConn."""
    opened = []

    class Factory:
        @staticmethod
        def raw(gw, timeout=wsraw.DEFAULT_TIMEOUT):
            c = wsraw.WSRaw(gw.host, gw.port, timeout)
            opened.append(c)
            return c

        @staticmethod
        def ws(gw, path="/echo", headers=None):
            c = Factory.raw(gw)
            c.open(path, headers)
            return c

        @staticmethod
        def http(gw, timeout=wsraw.DEFAULT_TIMEOUT):
            c = wsraw.HTTPConn(gw.host, gw.port, timeout)
            opened.append(c)
            return c

    yield Factory
    for c in opened:
        c.close()
