"""The demo page (built on the JavaScript client, clients/js) through a node
restart, in headless Chromium: Redis on, two nodes; the page is loaded from
and connected to node A through a small load balancer that, like a real one,
passes connections only to a node whose /ready answers 200; a publisher keeps
publishing into node B. A is SIGKILLed and restarted on its port while ticks
keep flowing: the page reconnects by itself (backoff with jitter), resumes
the symbol with `recover`, shows "recovered", and every seq reaches the table
exactly once (window.tickgateDemo.seqs, the seqs the page drew, and its gap
count). Every wait is a WebDriverWait on the page or a read of a socket."""
import socket
import threading
import time

from conftest import http_json, mint, wait_until
from redis_helpers import redis_server, rgw, rws, unmanaged_gw  # noqa: F401 (fixtures)
from test_demo_page import chromium, status, wait_for

SYM = "NVDA"
FLAGS = ("--feed.history_size=5000",)
PAGE_JS = """
const tr = document.querySelector('#prices tr[data-symbol="' + arguments[0] + '"]');
const d = window.tickgateDemo || {};
return {status: document.getElementById('status').textContent.trim(),
        recov: tr ? tr.querySelector('.recov').textContent.trim() : null,
        seq: tr && tr.dataset.seq ? Number(tr.dataset.seq) : null,
        seqs: (d.seqs || {})[arguments[0]] || [], gaps: d.gaps};
"""


class Balancer:
    """TCP passed through to `backend` (a port) while it is set; a
    connection arriving while it is None is closed at once."""

    def __init__(self):
        self.backend = None
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            if self.backend is None:
                s.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.backend))
            except OSError:
                s.close()
                continue
            self.socks += [s, up]
            threading.Thread(target=self._pump, args=(s, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, s), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        while True:
            try:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.lsock.close()
        for s in self.socks:
            s.close()


def page(driver):
    return driver.execute_script(PAGE_JS, SYM)


def test_page_reconnects_by_itself_and_recovers_without_gap(redis_server, rgw, unmanaged_gw, rws):
    b = rgw(redis_server, *FLAGS)
    a = unmanaged_gw(redis_server, *FLAGS)
    lb = Balancer()
    lb.backend = a.port
    pub = rws.open(b, token=mint("feed", "publisher"))
    published, stop = [0], threading.Event()

    def publisher():
        i = 0
        while not stop.is_set():
            r = pub.publish([{"symbol": SYM, "price": 100 + (i % 50) / 100}])
            assert r.get("type") == "published", r
            i += 1
            published[0] = i  # with Redis, seq = ticks published (the symbol starts at 0)
            stop.wait(0.01)   # pace: about 100 ticks/s

    gen = chromium()
    driver = next(gen)
    t = threading.Thread(target=publisher, daemon=True)
    try:
        driver.get("http://127.0.0.1:%d/?symbols=%s&autoconnect=1" % (lb.port, SYM))
        wait_for(driver, "#status 'connected'", lambda d: status(d) == "connected")
        t.start()
        wait_for(driver, "the page to draw 20 ticks", lambda d: len(page(d)["seqs"]) >= 20)

        lb.backend = None
        a.kill()
        wait_for(driver, "the page to notice and wait to reconnect", lambda d: status(d).startswith("reconnecting"))
        before = page(driver)["seqs"][-1]
        wait_until(lambda: published[0] >= before + 100, 10, "100 ticks published while A is down")
        a = unmanaged_gw(redis_server, *FLAGS, "--server.listen=127.0.0.1:%d" % a.port)
        wait_until(lambda: http_json(a, "GET", "/ready").status == 200, 10, "A ready")
        lb.backend = a.port
        back = time.monotonic()
        live_at_restart = published[0]
        wait_for(driver, "the row to show recovered", lambda d: page(d)["recov"] == "recovered")
        shown = time.monotonic() - back
        wait_for(driver, "live ticks after the replay", lambda d: (page(d)["seq"] or 0) >= live_at_restart + 20)
        stop.set()
        t.join(10)

        p = page(driver)
        seqs = p["seqs"]
        assert status(driver) == "connected"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate: %r" % seqs
        assert p["gaps"] == 0, p["gaps"]
        assert seqs[0] <= before < live_at_restart < seqs[-1]
        print("\npage: recovered shown %.0f ms after the restarted node took connections; "
              "%d ticks replayed (seq %d..%d), %d seqs drawn with no gap"
              % (shown * 1000, live_at_restart - before, before + 1, live_at_restart, len(seqs)))
    finally:
        stop.set()
        try:
            next(gen)
        except StopIteration:
            pass
        lb.close()
