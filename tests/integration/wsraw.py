"""wsraw - raw-socket WebSocket and HTTP helpers for tickgate's integration tests.

Everything here is built by hand on plain sockets so that tests can send
frames and requests a well-behaved client library would refuse to produce
(reserved bits, unmasked frames, bogus lengths, invalid UTF-8, truncated
headers). Every read is bounded by a deadline: timeouts are upper bounds on
waiting for an event, never a pause that hopes something happened.
"""
import base64
import errno
import hashlib
import json
import os
import socket
import struct
import time
from collections import namedtuple

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

OP_NAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

DEFAULT_TIMEOUT = 5.0

_RESET_ERRNOS = (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)


class PeerClosed(Exception):
    """The peer closed the TCP connection (EOF or reset) while we were reading."""

    def __init__(self, reset=False):
        super().__init__("connection reset by peer" if reset else "connection closed by peer (EOF)")
        self.reset = reset


def accept_for(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def op_name(op):
    return OP_NAMES.get(op, "0x%X" % op)


def close_payload(code=None, reason=b""):
    """Payload of a close frame: empty when code is None."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None, mask_key=None):
    """Encodes one client frame by hand.

    rsv is the 3-bit RSV field (4 = RSV1, 2 = RSV2, 1 = RSV3).
    length_override puts a different length in the header than the payload
    has (e.g. announce 2**40 bytes and send only the header). Lengths use the
    minimal encoding, as RFC 6455 requires."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    length = len(payload) if length_override is None else length_override
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", b0, mbit | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", b0, mbit | 126, length)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, length)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class _Conn:
    """A TCP connection with a buffered reader whose reads all take deadlines."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    # -- writing -------------------------------------------------------
    def send(self, data, chunk=None):
        """Writes data, optionally in chunks of `chunk` bytes (one send each)."""
        if chunk is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i:i + chunk])

    # -- reading -------------------------------------------------------
    def _fill(self, deadline):
        """Reads at least one more byte into buf before deadline.
        Raises socket.timeout at the deadline, PeerClosed on EOF/reset."""
        if self.eof:
            raise PeerClosed()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except OSError as e:
            if e.errno in _RESET_ERRNOS:
                self.eof = True
                raise PeerClosed(reset=True) from None
            raise
        if not data:
            self.eof = True
            raise PeerClosed()
        self.buf += data

    def read_exact(self, n, timeout=DEFAULT_TIMEOUT, deadline=None):
        if deadline is None:
            deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, delim, timeout=DEFAULT_TIMEOUT, limit=1 << 20, deadline=None):
        if deadline is None:
            deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (delim, limit))
            self._fill(deadline)

    def read_to_eof(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except PeerClosed:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_closed(self, timeout=DEFAULT_TIMEOUT, allow_data=False):
        """Waits until the peer closes TCP (EOF or reset), at most timeout s.
        Returns any bytes that arrived before; fails on timeout, and when
        allow_data is False also on any data arriving first."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                if not allow_data and self.buf:
                    raise AssertionError("unexpected data while waiting for the server to close TCP: %r"
                                         % bytes(self.buf[:200]))
        except PeerClosed:
            pass
        except socket.timeout:
            raise AssertionError("server did not close the TCP connection within %.1f s" % timeout) from None
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, header_list, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers          # lower-case name -> value (duplicates joined with ", ")
        self.header_list = header_list  # [(name, value)] as sent
        self.body = body
        self.raw_head = raw_head

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __iter__(self):  # (status, headers, body) unpacking
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<Response %d %s headers=%r body=%r>" % (self.status, self.reason, self.headers, self.body[:300])


def _parse_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise AssertionError("bad status line %r" % status_line)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers, header_list = {}, []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        header_list.append((name, value))
        key = name.lower()
        headers[key] = headers[key] + ", " + value if key in headers else value
    return status, reason, headers, header_list


class HTTPConn(_Conn):
    """One HTTP/1.1 connection; several requests may go over it (keep-alive)."""

    def request_bytes(self, method, path, headers=None, body=b"", host="tickgate.test"):
        h = {"Host": host}
        if body:
            h["Content-Length"] = str(len(body))
        for k, v in (headers or {}).items():
            h[k] = v
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        head += "".join("%s: %s\r\n" % (k, v) for k, v in h.items() if v is not None)
        return head.encode("latin-1") + b"\r\n" + body

    def request(self, method, path, headers=None, body=b"", timeout=DEFAULT_TIMEOUT):
        self.send(self.request_bytes(method, path, headers, body))
        return self.read_response(timeout=timeout, method=method)

    def read_response(self, timeout=DEFAULT_TIMEOUT, method="GET"):
        deadline = time.monotonic() + timeout
        raw_head = self.read_until(b"\r\n\r\n", deadline=deadline, limit=64 * 1024)
        status, reason, headers, header_list = _parse_head(raw_head[:-4])
        body = b""
        if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked(deadline)
        elif "content-length" in headers:
            body = self.read_exact(int(headers["content-length"]), deadline=deadline)
        else:
            try:
                while True:
                    self._fill(deadline)
            except PeerClosed:
                pass
            body = bytes(self.buf)
            self.buf.clear()
        return Response(status, reason, headers, header_list, body, raw_head)

    def _read_chunked(self, deadline):
        body = b""
        while True:
            line = self.read_until(b"\r\n", deadline=deadline)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.read_until(b"\r\n", deadline=deadline) != b"\r\n":
                    pass
                return body
            body += self.read_exact(size, deadline=deadline)
            self.read_exact(2, deadline=deadline)


def http_raw(host, port, data, timeout=DEFAULT_TIMEOUT, method="GET"):
    """Sends raw bytes as one request and returns the Response."""
    c = HTTPConn(host, port, timeout)
    try:
        c.send(data)
        return c.read_response(timeout=timeout, method=method)
    finally:
        c.close()


def http_request(host, port, method, path, headers=None, body=b"", timeout=DEFAULT_TIMEOUT):
    """One request on a fresh connection: returns a Response, which also
    unpacks as (status, headers, body)."""
    c = HTTPConn(host, port, timeout)
    try:
        return c.request(method, path, headers, body, timeout)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# WebSocket
# ---------------------------------------------------------------------------

Frame = namedtuple("Frame", "fin opcode payload")


class WSRaw(HTTPConn):
    """A raw WebSocket client: hand-built frames out, strictly checked frames in."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        super().__init__(host, port, timeout)
        self.key = None
        self.sent_close = False
        self.rsv1_ok = False   # permessage-deflate negotiated: RSV1 allowed on data frames
        self.last_rsv = 0      # RSV bits of the last frame received

    def handshake(self, path, headers=None, timeout=DEFAULT_TIMEOUT):
        """Sends an upgrade request for path and reads the response head
        (and, when the status is not 101, the body). headers override or
        add to the standard ones; a value of None drops that header.
        Returns a Response (status, reason, headers, body)."""
        self.key = new_key()
        h = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": self.key,
            "Sec-WebSocket-Version": "13",
        }
        for k, v in (headers or {}).items():
            h[k] = v
        if h.get("Sec-WebSocket-Key") is not None:
            self.key = h["Sec-WebSocket-Key"]
        self.send(self.request_bytes("GET", path, h))
        resp = self.read_response(timeout=timeout)
        return resp

    def open(self, path, headers=None, timeout=DEFAULT_TIMEOUT):
        """Handshake that must succeed: asserts 101 and a correct Accept."""
        resp = self.handshake(path, headers, timeout)
        assert resp.status == 101, "upgrade on %s: expected 101, got %r" % (path, resp)
        assert resp.headers.get("sec-websocket-accept") == accept_for(self.key), resp
        return resp

    # -- frames out ----------------------------------------------------
    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None, chunk=None):
        data = build_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv, length_override=length_override)
        if opcode == OP_CLOSE:
            self.sent_close = True
        self.send(data, chunk=chunk)
        return data

    def send_text(self, text, fin=True):
        return self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, fin=fin)

    def send_close(self, code=None, reason=b""):
        return self.send_frame(OP_CLOSE, close_payload(code, reason))

    # -- frames in -----------------------------------------------------
    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        """Reads one server frame: returns Frame(fin, opcode, payload).
        Server frames must be unmasked with RSV bits clear and minimal lengths."""
        deadline = time.monotonic() + timeout
        try:
            b0, b1 = self.read_exact(2, deadline=deadline)
        except socket.timeout:
            raise AssertionError("no frame from the server within %.1f s" % timeout) from None
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        assert not b1 & 0x80, "server frame is masked"
        assert rsv == 0 or (rsv == 4 and self.rsv1_ok and opcode in (OP_TEXT, OP_BINARY)), \
            "server frame has RSV bits %d" % rsv
        self.last_rsv = rsv
        length = b1 & 0x7F
        try:
            if length == 126:
                (length,) = struct.unpack("!H", self.read_exact(2, deadline=deadline))
                assert length >= 126, "server frame: non-minimal 16-bit length %d" % length
            elif length == 127:
                (length,) = struct.unpack("!Q", self.read_exact(8, deadline=deadline))
                assert 0xFFFF < length < (1 << 63), "server frame: bad 64-bit length %d" % length
            payload = self.read_exact(length, deadline=deadline)
        except socket.timeout:
            raise AssertionError("server frame truncated (timed out after %.1f s)" % timeout) from None
        if opcode & 0x8:
            assert fin, "server sent a fragmented control frame"
            assert length <= 125, "server control frame of %d bytes" % length
        return Frame(fin, opcode, payload)

    def expect_frame(self, opcode, payload, timeout=DEFAULT_TIMEOUT):
        """The next frame must be a final frame of opcode with exactly payload."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        try:
            f = self.recv_frame(timeout)
        except PeerClosed as e:
            raise AssertionError("expected %s frame, but: %s" % (op_name(opcode), e)) from None
        if f.opcode == OP_CLOSE and opcode != OP_CLOSE:
            raise AssertionError("expected %s frame, got close %s" % (op_name(opcode), _describe_close(f.payload)))
        assert f.opcode == opcode, "expected %s frame, got %s" % (op_name(opcode), op_name(f.opcode))
        assert f.fin, "expected an unfragmented %s frame, got fin=0" % op_name(opcode)
        if f.payload != payload:
            raise AssertionError("%s payload differs: got %d bytes %r..., expected %d bytes %r..."
                                 % (op_name(opcode), len(f.payload), f.payload[:60], len(payload), payload[:60]))
        return f

    def expect_close(self, code, timeout=DEFAULT_TIMEOUT, allow_data=True, reply=None, tcp_timeout=DEFAULT_TIMEOUT):
        """Reads frames until a close frame and asserts its status code.

        code: an int, None (empty close payload), or a tuple/set of those.
        allow_data: when False, any frame before the close fails the test.
        reply: send our close frame back (default: when we have not sent
        one yet), as the server waits for it before closing TCP.
        Then verifies the server closes TCP within tcp_timeout.
        Returns (code, reason_bytes, frames_before)."""
        accepted = set(code) if isinstance(code, (tuple, list, set, frozenset)) else {code}
        deadline = time.monotonic() + timeout
        before = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no close frame within %.1f s (expected %s); frames seen: %s"
                                     % (timeout, _codes(accepted), _summ(before)))
            try:
                f = self.recv_frame(remaining)
            except PeerClosed as e:
                raise AssertionError("server closed TCP without a close frame (expected close %s): %s; "
                                     "frames seen: %s" % (_codes(accepted), e, _summ(before))) from None
            except AssertionError as e:
                if "no frame from the server" in str(e):
                    raise AssertionError("no close frame within %.1f s (expected %s); frames seen: %s"
                                         % (timeout, _codes(accepted), _summ(before))) from None
                raise
            if f.opcode == OP_CLOSE:
                break
            if not allow_data:
                raise AssertionError("expected close %s, got a %s frame first (%r)"
                                     % (_codes(accepted), op_name(f.opcode), f.payload[:60]))
            before.append(f)
        p = f.payload
        assert len(p) != 1, "server close frame has a 1-byte payload"
        got = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
        reason = p[2:]
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError("server close reason is not UTF-8: %r" % reason) from None
        assert got in accepted, "expected close %s, got close %s (reason %r)" % (_codes(accepted), got, reason)
        if reply is None:
            reply = not self.sent_close
        if reply:
            try:
                self.send_frame(OP_CLOSE, close_payload(got))
            except OSError:
                pass  # the server may already have closed TCP
        self.wait_closed(tcp_timeout)
        return got, reason, before


def _describe_close(p):
    if len(p) >= 2:
        return "%d %r" % (struct.unpack("!H", p[:2])[0], p[2:])
    return "(empty)"


def _codes(accepted):
    return "/".join("empty" if c is None else str(c) for c in sorted(accepted, key=lambda c: -1 if c is None else c))


def _summ(frames):
    return "[" + ", ".join("%s(%d bytes)" % (op_name(f.opcode), len(f.payload)) for f in frames) + "]"


class BoundWS(WSRaw):
    """A WSRaw whose socket is set up before it connects: bound to source
    address src (per-IP rules from one machine) and/or given SO_RCVBUF
    rcvbuf (a small receive window, for slow-consumer tests)."""

    def __init__(self, host, port, src=None, timeout=DEFAULT_TIMEOUT, rcvbuf=None):  # noqa: super not called
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if src:
                s.bind((src, 0))
            s.settimeout(timeout)
            s.connect((host, port))
        except OSError:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port = host, port
        self.sock = s
        self.buf = bytearray()
        self.eof = False
        self.key = None
        self.sent_close = False

    def rst(self):
        """Closes with a TCP reset (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()
