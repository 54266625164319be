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
import time

from conftest import http_json, mint, wait_until
from redis_helpers import Balancer, SteadyPublisher, redis_server, rgw, rws, unmanaged_gw  # noqa: F401 (fixtures)
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


def page(driver):
    return driver.execute_script(PAGE_JS, SYM)


def test_page_reconnects_by_itself_and_recovers_without_gap(redis_server, rgw, unmanaged_gw, rws):
    b = rgw(redis_server, *FLAGS)
    a = unmanaged_gw(redis_server, *FLAGS)
    lb = Balancer()
    lb.backend = a.port
    pub = SteadyPublisher(rws.open(b, token=mint("feed", "publisher")), SYM, 0.01)  # about 100 ticks/s
    gen = chromium()
    driver = next(gen)
    try:
        driver.get("http://127.0.0.1:%d/?symbols=%s&autoconnect=1" % (lb.port, SYM))
        wait_for(driver, "#status 'connected'", lambda d: status(d) == "connected")
        pub.start()
        wait_for(driver, "the page to draw 20 ticks", lambda d: len(page(d)["seqs"]) >= 20)

        lb.backend = None
        a.kill()
        wait_for(driver, "the page to notice and wait to reconnect", lambda d: status(d).startswith("reconnecting"))
        before = page(driver)["seqs"][-1]
        wait_until(lambda: pub.count >= before + 100, 10, "100 ticks published while A is down")
        a = unmanaged_gw(redis_server, *FLAGS, "--server.listen=127.0.0.1:%d" % a.port)
        wait_until(lambda: http_json(a, "GET", "/ready").status == 200, 10, "A ready")
        lb.backend = a.port
        back = time.monotonic()
        live_at_restart = pub.count
        wait_for(driver, "the row to show recovered", lambda d: page(d)["recov"] == "recovered")
        shown = time.monotonic() - back
        wait_for(driver, "live ticks after the replay", lambda d: (page(d)["seq"] or 0) >= live_at_restart + 20)
        pub.stop()

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
        pub.stop()
        try:
            next(gen)
        except StopIteration:
            pass
        lb.close()
