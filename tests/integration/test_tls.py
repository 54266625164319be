"""TLS (wss://, https://) on server.tls_listen: real handshakes with Python's
ssl module and the websockets library, certificates made for each test by
python3-cryptography. Every wait reads the socket or the server's output."""
import asyncio
import datetime
import ipaddress
import json
import os
import re
import select
import signal
import socket
import ssl
import time
import warnings

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import get_metrics, http_json, mint, wait_until
from test_demo_page import chromium, row, status, wait_for

TLS_RE = re.compile(r"tickgate listening on (\S+):(\d+) \(tls\)")
FEED = ("--feed.sim_ticks_per_s=200", "--feed.sim_seed=7")


def make_cert(path, cn="localhost"):
    """A self-signed P-256 certificate for localhost and 127.0.0.1 into
    path/<cn>.crt and .key; returns (cert, key, DER of the cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    crt, kp = os.path.join(path, cn + ".crt"), os.path.join(path, cn + ".key")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return crt, kp, cert.public_bytes(serialization.Encoding.DER)


def tls_port(gw):
    m = wait_until(lambda: TLS_RE.search(gw.stdout), timeout=10, what="the (tls) listening line")
    return int(m.group(2))


def start_tls(gateway, cert, key, *flags):
    gw = gateway("--server.tls_listen=127.0.0.1:0", "--server.tls_cert=" + cert, "--server.tls_key=" + key, *flags)
    gw.tls_port = tls_port(gw)
    return gw


def insecure_ctx(**kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(gw, ctx=None, session=None, alpn=None):
    ctx = ctx or insecure_ctx()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def read_to_end(s):
    return b"".join(iter(lambda: s.recv(65536), b""))


def https_get(s, path):
    """One GET over an established TLS socket (Connection: close); returns
    (status, body)."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
    head, _, body = read_to_end(s).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def wait_closed(sock, timeout):
    """Reads until the server closes sock; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the server kept the connection open for %.1f s" % timeout
        r, _, _ = select.select([sock], [], [], remaining)
        if r:
            try:
                if not sock.recv(65536):
                    return
            except ConnectionResetError:
                return


async def wss_ticks(port, ctx, n, symbol="AAPL"):
    async with websockets.connect("wss://localhost:%d/ws" % port, ssl=ctx) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connected", hello
        await ws.send(json.dumps({"type": "subscribe", "symbols": [symbol], "id": "s1"}))
        got = []
        while len(got) < n:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m.get("type") == "price_update":
                got.append(m)
        return got


def test_wss_subscribe_ticks_arrive(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key, *FEED)
    ctx = ssl.create_default_context(cafile=crt)  # verifies the chain and the name
    ticks = asyncio.run(wss_ticks(gw.tls_port, ctx, 5))
    assert all(t["symbol"] == "AAPL" for t in ticks)
    seqs = [t["seq"] for t in ticks]
    assert seqs == sorted(seqs)
    # The plain listener keeps serving next to it.
    assert http_json(gw, "GET", "/health").status == 200


def test_wss_burst_gathered_into_records_arrives_whole(tickgate, jclients, tmp_path):
    """One publish of 500 ticks queues 500 small frames for a wss
    subscriber at once: conn_tls.c gathers them into shared records. Every
    tick must arrive whole and in order, and a reply larger than the
    gathering limit (a 500-tick history) after them."""
    crt, key, _ = make_cert(str(tmp_path))
    gw = tickgate("--server.tls_listen=127.0.0.1:0", "--server.tls_cert=" + crt, "--server.tls_key=" + key)
    gw.tls_port = tls_port(gw)
    pub = jclients.publisher(gw)
    n = 500
    prices = [round(100 + i / 100, 2) for i in range(1, n + 1)]

    async def run():
        async with websockets.connect("wss://localhost:%d/ws" % gw.tls_port, ssl=insecure_ctx(), max_size=None,
                                      extra_headers={"Authorization": "Bearer " + mint("v1", "viewer")}) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["AAPL"], "id": "s"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "subscription_confirmed":
                pass
            assert pub.publish([{"symbol": "AAPL", "price": p} for p in prices])["type"] == "published"
            got = []
            while len(got) < n:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if m.get("type") == "price_update" and not m.get("snapshot"):
                    got.append(m)
            await ws.send(json.dumps({"type": "get_history", "symbol": "AAPL", "limit": n}))
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if m.get("type") == "history":
                    return got, m

    got, hist = asyncio.run(run())
    assert [m["price"] for m in got] == prices
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + n))
    assert [u["price"] for u in hist["updates"]] == prices


def test_https_health_and_demo_page(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key)
    ctx = ssl.create_default_context(cafile=crt)
    status, body = https_get(tls_connect(gw, ctx), "/health")
    assert status == 200 and json.loads(body)["status"], body
    status, body = https_get(tls_connect(gw, ctx), "/")
    assert status == 200 and b'id="prices"' in body


def test_keepalive_requests_over_one_tls_connection(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key)
    s = tls_connect(gw)
    # Two requests in one record, then a third: pipelining through TLS.
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_to_end(s)
    assert data.count(b"HTTP/1.1 200 OK") == 3, data[:300]


def test_alpn_selects_http11_never_h2(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key)
    s = tls_connect(gw, alpn=["h2", "http/1.1"])
    assert s.selected_alpn_protocol() == "http/1.1"
    assert https_get(s, "/health")[0] == 200
    s = tls_connect(gw, alpn=["h2"])
    assert s.selected_alpn_protocol() is None  # no h2: the handshake goes on without ALPN
    assert https_get(s, "/health")[0] == 200


def test_versions_12_and_13_only(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key)
    for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        s = tls_connect(gw, insecure_ctx(minimum_version=v, maximum_version=v))
        assert s.version() == name
        assert https_get(s, "/health")[0] == 200
    old = insecure_ctx()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as e:
        tls_connect(gw, old)
    assert "PROTOCOL_VERSION" in str(e.value).upper(), e.value  # the server's alert
    assert https_get(tls_connect(gw), "/health")[0] == 200


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumption(gateway, tmp_path, version):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key, "--server.workers=2")
    ctx = insecure_ctx(minimum_version=version, maximum_version=version)
    s = tls_connect(gw, ctx)
    assert https_get(s, "/health")[0] == 200  # TLS 1.3 tickets arrive after the handshake
    sess = s.session
    assert sess is not None and sess.has_ticket
    assert not s.session_reused
    s.close()
    for _ in range(4):  # whichever worker takes it: tickets are the server's, not a worker's
        s = tls_connect(gw, ctx, session=sess)
        assert s.session_reused
        assert https_get(s, "/health")[0] == 200
        s.close()


def test_sighup_reload_new_cert_established_stays(gateway, tmp_path):
    crt, key, der_a = make_cert(str(tmp_path), "a")
    gw = start_tls(gateway, crt, key, *FEED)

    async def scenario():
        ctx = insecure_ctx()
        async with websockets.connect("wss://localhost:%d/ws" % gw.tls_port, ssl=ctx) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["AAPL"], "id": "s1"}))

            async def ticks(n):
                got = 0
                while got < n:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    got += m.get("type") == "price_update"

            await ticks(2)
            assert tls_connect(gw).getpeercert(binary_form=True) == der_a
            # Swap the files in place, as a certificate renewal does.
            b_crt, b_key, der_b = make_cert(str(tmp_path), "b")
            os.replace(b_crt, crt)
            os.replace(b_key, key)
            gw.send_signal(signal.SIGHUP)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: wait_until(lambda: "TLS certificate and key reloaded" in gw.stderr, timeout=10,
                                         what="the reload log line"))
            assert tls_connect(gw).getpeercert(binary_form=True) == der_b
            await ticks(3)  # the connection begun on the old pair keeps going

    asyncio.run(scenario())


def test_reload_to_broken_file_keeps_old_pair(gateway, tmp_path):
    crt, key, der_a = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key)
    with open(key, "rb") as f:
        key_pem = f.read()
    assert get_metrics(gw)["tickgate_tls_reload_failures_total"] == 0
    with open(crt, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    gw.send_signal(signal.SIGHUP)
    wait_until(lambda: "TLS reload failed" in gw.stderr, timeout=10, what="the reload failure log line")
    line = [ln for ln in gw.stderr.splitlines() if "TLS reload failed" in ln][0]
    assert crt in line, line
    assert get_metrics(gw)["tickgate_tls_reload_failures_total"] == 1
    assert tls_connect(gw).getpeercert(binary_form=True) == der_a
    # The key itself never reaches the logs.
    body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert body[:20] not in gw.stderr and body[:20] not in gw.stdout


def expect_start_failure(gateway, flags, must_name):
    gw = gateway(*flags, wait=False)
    rc = gw.wait(10)
    gw.start_failed = True  # failing is the point: not a teardown problem
    assert rc not in (None, 0), gw.output()
    assert must_name in gw.stderr, gw.stderr
    assert "tickgate listening" not in gw.stdout


def test_bad_cert_or_key_at_start_exits_naming_the_file(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    other_crt, other_key, _ = make_cert(str(tmp_path), "other")
    missing = str(tmp_path / "missing.crt")
    garbage = str(tmp_path / "garbage.key")
    with open(garbage, "w") as f:
        f.write("garbage\n")
    base = ["--server.tls_listen=127.0.0.1:0"]
    expect_start_failure(gateway, base + ["--server.tls_cert=" + missing, "--server.tls_key=" + key], missing)
    expect_start_failure(gateway, base + ["--server.tls_cert=" + crt, "--server.tls_key=" + garbage], garbage)
    expect_start_failure(gateway, base + ["--server.tls_cert=" + crt, "--server.tls_key=" + other_key], other_key)
    expect_start_failure(gateway, base, "server.tls_cert")
    expect_start_failure(gateway, ["--server.tls_listen=nonsense", "--server.tls_cert=" + crt,
                                   "--server.tls_key=" + key], "server.tls_listen")


def test_half_open_client_hello_closed_at_handshake_timeout(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key, "--server.handshake_timeout_ms=500", "--limits.max_connections=1")
    silent = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10)
    # A ClientHello's record and handshake headers announcing 512 bytes, then nothing.
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    wait_closed(partial, 5)
    wait_closed(silent, 5)
    # Its slot is free: the one WebSocket the node holds still gets in.
    assert asyncio.run(wss_ticks(gw.tls_port, insecure_ctx(), 0)) == []


def test_garbage_on_the_tls_port(gateway, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"\x16\x03\x03\xff\xff" + b"\x00" * 64):
        s = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10)
        s.sendall(junk)
        wait_closed(s, 5)
        s.close()
    assert https_get(tls_connect(gw), "/health")[0] == 200
    assert http_json(gw, "GET", "/health").status == 200


@pytest.fixture
def tls_browser(gateway):
    """Chromium that accepts the test's self-signed certificate."""
    yield from chromium("--ignore-certificate-errors")


def test_demo_page_over_https_and_wss_in_chromium(gateway, tls_browser, tmp_path):
    crt, key, _ = make_cert(str(tmp_path))
    gw = start_tls(gateway, crt, key, *FEED)
    tls_browser.get("https://localhost:%d/?symbols=AAPL,MSFT&autoconnect=1" % gw.tls_port)
    wait_for(tls_browser, "#status to read 'connected'", lambda d: status(d) == "connected")
    assert tls_browser.execute_script("return location.protocol") == "https:"
    first = wait_for(tls_browser, "a first AAPL price", lambda d: (row(d, "AAPL") or {}).get("seq") and row(d, "AAPL"))
    wait_for(tls_browser, "the AAPL seq to change", lambda d: (row(d, "AAPL") or {}).get("seq") != first["seq"])
    metrics = get_metrics(gw)
    assert metrics['tickgate_connections{role="anonymous"}'] == 1  # the page's socket is the wss one
