"""Client: one logical connection to a tickgate gateway that survives the
loss of its socket. The wire contract is docs/protocol.md; the client's own
rules (what is retried, what is dropped, every bound) are in
clients/python/README.md.

One task owns the socket (_run): it connects, resubscribes with `recover`,
reads, and on a loss waits (backoff with full jitter, or the server's
`reconnect` advisory) and connects again. Requests wait for a connection,
are matched to their replies by `id`, and time out."""
import asyncio
import inspect
import itertools
import json
import random as _random
import time

import websockets

from .backoff import Backoff
from .errors import TickgateError, error, subscription_error

MAX_SYMBOLS = 100      # protocol bound on one subscribe
MAX_ADVICE_S = 60.0    # a reconnect advisory is obeyed up to this
# A server close with one of these means "this client is broken or banned":
# reconnecting would only repeat it.
FATAL_CLOSE = {1002, 1003, 1007, 1008, 1009}
# Requests sent again after a reconnect when the socket died under them; the
# others (trade, publish, authenticate, admin_broadcast) fail with
# Disconnected, since the server may or may not have acted.
RETRIED = {"subscribe", "unsubscribe", "heartbeat", "get_history", "analysis", "set_options",
           "portfolio_subscribe"}


class _Sub:
    __slots__ = ("seq", "epoch", "delayed", "active")

    def __init__(self, seq=None, epoch=None):
        self.seq, self.epoch, self.delayed, self.active = seq, epoch, False, False


class _Request:
    __slots__ = ("msg", "future", "sent", "internal", "parts", "timer")

    def __init__(self, msg, future, internal):
        self.msg, self.future, self.internal = msg, future, internal
        self.sent, self.parts, self.timer = False, None, None


class _Updates:
    """One consumer's bounded queue. At the bound the oldest update is
    dropped and counted (stats["dropped"]): a consumer that falls
    max_queue updates behind must not grow the process without limit."""

    def __init__(self, client, symbols, max_queue):
        self.client, self.symbols, self.max_queue = client, symbols, max_queue
        self.q = asyncio.Queue()

    def put(self, u):
        if self.symbols is not None and u["symbol"] not in self.symbols:
            return
        if self.q.qsize() >= self.max_queue:
            self.q.get_nowait()
            self.client.stats["dropped"] += 1
        self.q.put_nowait(u)

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.q.empty() and self.client.state == "closed":
            self.client._consumers.discard(self)
            raise StopAsyncIteration
        u = await self.q.get()
        if u is None:  # the client closed
            self.client._consumers.discard(self)
            raise StopAsyncIteration
        return u


async def _maybe_await(v):
    return await v if inspect.isawaitable(v) else v


class Client:
    """See connect(). Attributes: state (idle, connecting, connected,
    reconnecting, closed), session (the server's `connected` frame while
    connected), subscriptions (symbol -> position), stats."""

    def __init__(self, url, *, token=None, api_key=None, token_provider=None, reconnect=True,
                 backoff=None, random=_random.random, request_timeout=10.0, connect_timeout=10.0,
                 heartbeat=25.0, max_queue=256, max_pending=1024, max_updates=65536, ssl=None,
                 on_event=None):
        self.url = url
        self._token, self._api_key, self._token_provider = token, api_key, token_provider
        self._reconnect, self._backoff = reconnect, backoff or Backoff()
        self._random = random
        self._request_timeout, self._connect_timeout, self._heartbeat = request_timeout, connect_timeout, heartbeat
        self._max_queue, self._max_pending, self._max_updates = max_queue, max_pending, max_updates
        self._ssl, self._on_event = ssl, on_event
        self.state = "idle"
        self.session = None
        self.subscriptions = {}
        self.stats = {"connects": 0, "duplicates": 0, "gaps": 0, "recovered": 0, "missed": 0, "dropped": 0}
        self._ids = itertools.count(1)
        self._pending = {}          # id -> _Request (sent or waiting)
        self._outbox = []           # requests waiting for a connection
        self._consumers = set()
        self._ws = None
        self._task = None
        self._connected = None      # asyncio.Event: set while connected
        self._advice_at = None      # monotonic time the server asked us to come back
        self._batch_ms = 0
        self._portfolio = False
        self._closing = False
        self._failure = None        # why the client gave up

    # ---------- lifecycle ----------

    async def connect(self):
        """Starts the connection task and waits for the first connection;
        raises ClientClosed when the client gives up first."""
        if self._task is None:
            self._connected = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        waiter = asyncio.ensure_future(self._connected.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            raise self._failure or error("closed", "client closed")
        return self.session

    async def close(self):
        """Closes for good: no reconnect; waiting requests fail with
        ClientClosed; update iterators end."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._give_up(error("closed", "client closed"))

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _event(self, name, **info):
        if self._on_event is not None:
            self._on_event(name, info)

    def _set_state(self, state, **info):
        if self.state != state or info:
            self.state = state
            self._event("state", state=state, **info)

    async def _run(self):
        attempt = 0
        while not self._closing:
            self._set_state("connecting")
            code = None
            try:
                if self._token_provider is not None and (self.stats["connects"] or not self._token):
                    tok = await _maybe_await(self._token_provider())
                    if tok:
                        self._token = tok
                headers = {}
                if self._token:
                    headers["Authorization"] = "Bearer " + self._token
                elif self._api_key:
                    headers["X-API-Key"] = self._api_key
                kw = {"ssl": self._ssl} if self._ssl is not None else {}
                ws = await websockets.connect(self.url, extra_headers=headers, open_timeout=self._connect_timeout,
                                              close_timeout=2, ping_interval=None, max_size=None, **kw)
                self._ws = ws
                first = json.loads(await asyncio.wait_for(ws.recv(), self._connect_timeout))
                if first.get("type") != "connected":
                    raise TickgateError("connect_failed", "first frame was %r" % first.get("type"))
                attempt = 0
                self._on_connected(first)
                await self._read(ws)
                code = ws.close_code
            except asyncio.CancelledError:
                raise
            except websockets.ConnectionClosed as e:
                code = e.code
            except Exception as e:  # refused, reset, a bad handshake, a token provider's failure
                self._event("error", error=e)
            finally:
                if self._ws is not None:
                    await self._ws.close()
                    self._ws = None
                self._lost()
            if self._closing:
                break
            if not self._reconnect or code in FATAL_CLOSE or (code == 4001 and self._token_provider is None):
                self._give_up(error("closed", "connection closed with %s" % code, close_code=code))
                return
            if self._advice_at is not None:
                delay, self._advice_at = max(0.0, self._advice_at - time.monotonic()), None
            else:
                delay = self._backoff.delay(attempt, self._random)
                attempt += 1
            self._set_state("reconnecting", delay=delay, attempt=attempt)
            await asyncio.sleep(delay)

    def _on_connected(self, m):
        self.session = m
        self.stats["connects"] += 1
        self._set_state("connected")
        self._connected.set()
        self._resubscribe()
        if self._batch_ms:
            self._internal({"type": "set_options", "batch_ms": self._batch_ms})
        if self._portfolio:
            self._internal({"type": "portfolio_subscribe"})
        waiting, self._outbox = self._outbox, []
        for r in waiting:
            if self._pending.get(r.msg["id"]) is r:
                self._transmit(r)
        self._event("connected", session=m)

    async def _read(self, ws):
        hb = asyncio.ensure_future(self._beat(ws)) if self._heartbeat else None
        try:
            async for raw in ws:
                if isinstance(raw, str):
                    self._on_text(raw)
        finally:
            if hb is not None:
                hb.cancel()

    async def _beat(self, ws):
        """An application heartbeat every `heartbeat` s; no ack in time drops
        the socket as dead (a half-open TCP connection is otherwise never
        noticed)."""
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._request({"type": "heartbeat"}, min(self._heartbeat, self._request_timeout), True)
            except TickgateError as e:
                if e.code == "timeout":
                    ws.transport.abort()  # no close handshake with a dead peer
                    return

    def _lost(self):
        """The socket is gone: requests on it are retried later or fail."""
        self.session = None
        if self._connected is not None:
            self._connected.clear()
        again = []
        for r in list(self._pending.values()):
            if not r.sent:
                continue
            if r.msg["type"] in RETRIED and not r.internal:
                r.sent, r.parts = False, None
                again.append(r)
            else:
                self._settle(r, error("disconnected", "connection lost before the reply", request=r.msg))
        self._outbox = again + self._outbox

    def _give_up(self, err):
        self._failure = err
        for r in list(self._pending.values()):
            self._settle(r, err)
        self._outbox = []
        self._set_state("closed")
        for c in list(self._consumers):
            c.q.put_nowait(None)

    # ---------- incoming ----------

    def _on_text(self, raw):
        try:
            m = json.loads(raw)
        except ValueError:
            return
        if not isinstance(m, dict):
            return
        t = m.get("type")
        if t == "price_update":
            self._on_update(m)
        elif t == "price_batch":
            for u in m.get("updates") or []:
                self._on_update(u)
        elif t == "reconnect":
            self._on_advice(m)
        elif t == "token_expiring":
            asyncio.ensure_future(self._refresh_token())
        r = self._pending.get(m.get("id")) if m.get("id") is not None else None
        if r is not None:
            self._on_reply(r, m)
        elif t not in ("price_update", "price_batch"):
            self._event(t or "message", message=m)

    def _on_update(self, u):
        """Dedupe by seq: a tick at or below the last seq seen is dropped (a
        replay overlapping what arrived already); a snapshot resets the
        symbol's position (recovered: false, a resync, a fresh subscribe)."""
        s = self.subscriptions.get(u.get("symbol"))
        seq = u.get("seq")
        if s is None or not isinstance(seq, int):
            return
        if u.get("snapshot"):
            s.seq = seq
        elif s.seq is not None and seq <= s.seq:
            self.stats["duplicates"] += 1
            return
        else:
            if s.seq is not None and seq > s.seq + 1 and not s.delayed:
                self.stats["gaps"] += 1
                self._event("gap", symbol=u["symbol"], first=s.seq + 1, last=seq - 1)
            s.seq = seq
        for c in list(self._consumers):
            c.put(u)

    def _on_advice(self, m):
        """The node drains: come back after after_ms (through the load
        balancer, to another node); the socket is dropped then if the server
        has not closed it already."""
        try:
            after = min(MAX_ADVICE_S, max(0.0, float(m.get("after_ms") or 0) / 1000.0))
        except (TypeError, ValueError):
            after = 0.0
        self._advice_at = time.monotonic() + after
        ws = self._ws
        loop = asyncio.get_running_loop()
        loop.call_later(after, lambda: ws is self._ws and ws is not None and
                        asyncio.ensure_future(ws.close(1001, "reconnect advised")))

    def _on_reply(self, r, m):
        t = m.get("type")
        if t == "error":
            return self._settle(r, error(m.get("code", "error"), m.get("message"), request=r.msg))
        if r.msg["type"] == "trade" and t == "trade_rejected":
            return self._settle(r, error("trade_rejected", m.get("reason"), reason=m.get("reason"),
                                         request=r.msg))
        if r.msg["type"] != "subscribe":
            return self._settle(r, None, m)
        # A subscribe is answered by a confirmation and/or one failure per
        # reason; together they name every symbol asked for exactly once.
        if r.parts is None:
            r.parts = {"confirmed": None, "failures": [], "left": set(r.msg["symbols"])}
        p = r.parts
        if t == "subscription_confirmed":
            p["confirmed"] = m
            self._apply_confirmed(m)
            p["left"].difference_update(m.get("symbols") or [])
        elif t == "subscription_failed":
            syms = m.get("symbols") or []
            p["failures"].append((m.get("reason"), syms))
            for s in syms:
                self.subscriptions.pop(s, None)
            p["left"].difference_update(syms)
        if p["left"]:
            return
        if p["failures"]:
            self._settle(r, subscription_error(p["failures"], p["confirmed"]))
        else:
            self._settle(r, None, p["confirmed"])

    def _apply_confirmed(self, m):
        rec = m.get("recovered") or {}
        delayed = set(m.get("delayed") or [])
        epochs = m.get("epochs") or {}
        for sym in m.get("symbols") or []:
            s = self.subscriptions.setdefault(sym, _Sub())
            epoch = epochs.get(sym)
            if rec.get(sym) is False or epoch != s.epoch:
                s.seq = None
            s.epoch, s.delayed, s.active = epoch, sym in delayed, True
        if "recovered" in m:
            got = [k for k, v in rec.items() if v is True]
            missed = [k for k, v in rec.items() if v is not True]
            self.stats["recovered"] += len(got)
            self.stats["missed"] += len(missed)
            self._event("recovered", recovered=got, missed=missed, epochs=epochs)

    async def _refresh_token(self):
        if self._token_provider is None:
            return
        try:
            tok = await _maybe_await(self._token_provider())
            if tok:
                await self.authenticate(token=tok)
        except Exception as e:  # reported, never raised into the reader
            self._event("error", error=e)

    # ---------- requests ----------

    async def request(self, msg, timeout=None):
        """Sends msg with a fresh id and returns the reply; raises a
        TickgateError (the server's error, RequestTimeout, Disconnected, ...).
        While not connected the request waits (at most max_queue of them);
        the timeout counts from the call."""
        return await self._request(msg, timeout, False)

    def _internal(self, msg):
        fut = asyncio.ensure_future(self._request(msg, None, True))

        def done(f):
            e = None if f.cancelled() else f.exception()
            if e is not None and getattr(e, "code", None) not in ("disconnected", "closed"):
                self._event("error", error=e)
        fut.add_done_callback(done)

    async def _request(self, msg, timeout, internal):
        if self.state == "closed":
            raise error("closed", "client closed")
        if len(self._pending) >= self._max_pending:
            raise error("queue_full", "too many requests awaiting a reply")
        t = timeout or self._request_timeout
        r = _Request(dict(msg, id=next(self._ids)), asyncio.get_running_loop().create_future(), internal)
        r.timer = asyncio.get_running_loop().call_later(
            t, lambda: self._settle(r, error("timeout", "no reply to %s within %g s" % (msg["type"], t),
                                             request=r.msg)))
        self._pending[r.msg["id"]] = r
        if self.state == "connected":
            self._transmit(r)
        elif internal or len(self._outbox) < self._max_queue:
            self._outbox.append(r)
        else:
            self._settle(r, error("queue_full", "too many requests waiting for a connection"))
        return await r.future

    def _transmit(self, r):
        ws = self._ws
        if ws is None or not ws.open:
            self._outbox.append(r)
            return
        asyncio.ensure_future(ws.send(json.dumps(r.msg)))
        r.sent = True

    def _settle(self, r, err, value=None):
        if self._pending.get(r.msg["id"]) is not r:
            return
        r.timer.cancel()
        del self._pending[r.msg["id"]]
        if r in self._outbox:
            self._outbox.remove(r)
        if r.future.done():
            return
        if err is not None:
            r.future.set_exception(err)
        else:
            r.future.set_result(value)

    def _resubscribe(self):
        syms = [k for k, s in self.subscriptions.items() if s.active]
        for i in range(0, len(syms), MAX_SYMBOLS):
            part = syms[i:i + MAX_SYMBOLS]
            recover = {k: {"seq": self.subscriptions[k].seq, "epoch": self.subscriptions[k].epoch}
                       for k in part if self.subscriptions[k].seq is not None
                       and self.subscriptions[k].epoch is not None and not self.subscriptions[k].delayed}
            msg = {"type": "subscribe", "symbols": part}
            if recover:
                msg["recover"] = recover
            self._internal(msg)

    # ---------- the protocol's messages ----------

    def updates(self, symbols=None):
        """An async iterator of price_update dicts (batches unpacked), in
        order, each seq once, continuing across reconnects; only `symbols`
        when given. It ends when the client closes."""
        c = _Updates(self, set(symbols) if symbols is not None else None, self._max_updates)
        self._consumers.add(c)
        return c

    async def subscribe(self, symbols, timeout=None):
        """Returns subscription_confirmed; raises a SubscriptionError
        subclass (UnknownSymbol, NotEntitled, LimitExceeded, InvalidSymbol)
        when any symbol failed: the confirmed ones stay subscribed."""
        syms = list(dict.fromkeys(symbols))
        if len(syms) > MAX_SYMBOLS:
            raise error("invalid_message", "at most %d symbols per subscribe" % MAX_SYMBOLS)
        for s in syms:
            self.subscriptions.setdefault(s, _Sub())
        try:
            return await self.request({"type": "subscribe", "symbols": syms}, timeout)
        except TickgateError as e:
            if e.code != "subscription_failed":
                for s in syms:
                    if s in self.subscriptions and not self.subscriptions[s].active:
                        del self.subscriptions[s]
            raise

    async def unsubscribe(self, symbols, timeout=None):
        """Forgets the symbols at once; returns unsubscription_confirmed."""
        for s in symbols:
            self.subscriptions.pop(s, None)
        return await self.request({"type": "unsubscribe", "symbols": list(symbols)}, timeout)

    async def heartbeat(self, timeout=None):
        return await self.request({"type": "heartbeat"}, timeout)

    async def authenticate(self, token=None, api_key=None, timeout=None):
        """In-band identity change; the credential is also used on reconnect."""
        msg = {"type": "authenticate", "token": token} if token else {"type": "authenticate", "api_key": api_key}
        m = await self.request(msg, timeout)
        if token:
            self._token = token
        else:
            self._api_key, self._token = api_key, None
        return m

    async def set_options(self, batch_ms, timeout=None):
        """batch_ms > 0: updates arrive as price_batch (yielded one by one)."""
        self._batch_ms = batch_ms
        return await self.request({"type": "set_options", "batch_ms": batch_ms}, timeout)

    async def get_history(self, symbol, limit=None, timeout=None):
        msg = {"type": "get_history", "symbol": symbol}
        if limit is not None:
            msg["limit"] = limit
        return await self.request(msg, timeout)

    async def analysis(self, symbol, window_s=None, timeout=None):
        msg = {"type": "analysis", "symbol": symbol}
        if window_s is not None:
            msg["window_s"] = window_s
        return await self.request(msg, timeout)

    async def portfolio_subscribe(self, timeout=None):
        """portfolio_update events follow (on_event); sent again after each reconnect."""
        self._portfolio = True
        return await self.request({"type": "portfolio_subscribe"}, timeout)

    async def trade(self, timeout=None, **order):
        """Returns trade_accepted; trade_rejected raises TickgateError with
        code trade_rejected and `reason`. Never retried after a lost
        connection."""
        return await self.request(dict(order, type="trade"), timeout)

    async def publish(self, updates, timeout=None):
        return await self.request({"type": "publish", "updates": list(updates)}, timeout)

    async def admin_broadcast(self, message, roles=None, timeout=None):
        msg = {"type": "admin_broadcast", "message": message}
        if roles is not None:
            msg["roles"] = list(roles)
        return await self.request(msg, timeout)


class connect:
    """`async with tickgate.connect(url, token=...) as c:` — a Client,
    connected on entry and closed on exit. Keyword arguments are Client's.
    `c = await tickgate.connect(url)` works too (close it yourself)."""

    def __init__(self, url, **kw):
        self._client = Client(url, **kw)

    async def __aenter__(self):
        await self._client.connect()
        return self._client

    async def __aexit__(self, *exc):
        await self._client.close()

    def __await__(self):
        return self._connect().__await__()

    async def _connect(self):
        await self._client.connect()
        return self._client
