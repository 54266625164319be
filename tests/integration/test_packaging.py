"""Packaging (PROTOCOL.md section 15): `make install` into a temporary
DESTDIR, the man page and example configuration written from the key
table, the systemd unit (systemd-analyze verify where present), Type=notify
readiness over a real NOTIFY_SOCKET datagram socket, and the Containerfile's
promises (checked as text: no container engine runs these tests)."""
import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import ROOT, child_env, http_json, tickgate_bin, wait_until


def help_keys():
    out = subprocess.run([tickgate_bin(), "--help"], capture_output=True, text=True, check=True).stdout
    return re.findall(r"^  ([a-z_]+)\.([a-z_0-9]+) \(default", out, re.M)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    build = os.path.dirname(tickgate_bin())
    r = subprocess.run(["make", "--no-print-directory", "install", "PREFIX=/usr", "DESTDIR=%s" % dest,
                        "BUILD=%s" % os.path.relpath(build, ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest


def test_install_tree(installed):
    want = ["usr/bin/tickgate", "usr/share/man/man1/tickgate.1", "etc/tickgate/tickgate.ini",
            "usr/lib/systemd/system/tickgate.service", "usr/share/tickgate/tickgate.ini.example",
            "usr/share/tickgate/web/index.html", "usr/share/tickgate/web/client/index.js"]
    for p in want:
        assert os.path.isfile(os.path.join(installed, p)), p
    assert os.access(os.path.join(installed, "usr/bin/tickgate"), os.X_OK)
    unit = open(os.path.join(installed, "usr/lib/systemd/system/tickgate.service")).read()
    assert "ExecStart=/usr/bin/tickgate --config=/etc/tickgate/tickgate.ini" in unit
    for directive in ("Type=notify", "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                      "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec="):
        assert directive in unit, directive


def test_man_page_and_example_config_list_every_key(installed):
    man = open(os.path.join(installed, "usr/share/man/man1/tickgate.1")).read()
    ini = open(os.path.join(installed, "etc/tickgate/tickgate.ini")).read()
    assert man.startswith(".TH TICKGATE 1")
    keys = help_keys()
    assert len(keys) > 60
    for section, name in keys:
        assert "\\-\\-%s.%s" % (section, name) in man, (section, name)
        assert re.search(r"^;?%s = " % re.escape(name), ini, re.M), (section, name)
    assert "[feed]" in ini and ini.count("[feed]") == 1
    assert "static_dir = /usr/share/tickgate/web" in ini
    if shutil.which("man"):
        r = subprocess.run(["man", "-l", "-Tutf8", os.path.join(installed, "usr/share/man/man1/tickgate.1")],
                           capture_output=True, text=True, env=dict(os.environ, MANWIDTH="100"))
        text = re.sub(".\x08", "", r.stdout)  # overstrike bold
        assert r.returncode == 0 and "server.listen" in text and "hash-key" in text, r.stderr


def test_example_config_starts_the_server(installed, gateway):
    ini = os.path.join(installed, "etc/tickgate/tickgate.ini")
    gw = gateway("--config=%s" % ini, "--server.static_dir=%s" % os.path.join(installed, "usr/share/tickgate/web"))
    assert http_json(gw, "GET", "/ready").status == 200


def test_systemd_analyze_verify(installed, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = open(os.path.join(installed, "usr/lib/systemd/system/tickgate.service")).read()
    # verify checks that ExecStart exists: point it at the binary under test.
    unit = unit.replace("ExecStart=/usr/bin/tickgate", "ExecStart=" + tickgate_bin())
    path = tmp_path / "tickgate.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_containerfile_runs_as_non_root_with_ready_healthcheck():
    text = open(os.path.join(ROOT, "Containerfile")).read()
    assert re.search(r"^FROM debian:", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), user
    assert re.search(r"^HEALTHCHECK .*\n?.*?/ready", text, re.M)
    assert "make install" in text


class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(10)

    def expect(self, key, timeout=10):
        """Reads datagrams until one carries key (e.g. READY=1); returns it."""
        self.sock.settimeout(timeout)
        while True:
            msg = self.sock.recv(4096).decode()
            if key in msg.split("\n"):
                return msg

    def close(self):
        self.sock.close()


def test_sd_notify_ready_reload_watchdog_stopping(gateway, tmp_path):
    ns = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        gw = gateway(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "3000000"})
        msg = ns.expect("READY=1")
        assert "MAINPID=%d" % gw.pid in msg, msg
        assert http_json(gw, "GET", "/ready").status == 200
        ns.expect("WATCHDOG=1")
        gw.send_signal(signal.SIGHUP)
        ns.expect("RELOADING=1")
        ns.expect("READY=1")
        gw.send_signal(signal.SIGTERM)
        ns.expect("STOPPING=1")
        assert gw.wait(10) == 0
    finally:
        ns.close()


def test_no_notify_socket_no_datagram(gateway):
    """Outside systemd nothing is sent and nothing fails."""
    gw = gateway()
    assert http_json(gw, "GET", "/ready").status == 200
