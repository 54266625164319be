"""The admin page (web/admin.html, admin.js) in headless Chromium: with an
admin token it lists this node's connections, the top symbols by
subscribers and the blocked IPs, unblocks one and broadcasts; a token that
is not an admin's is refused on the page. Waits are WebDriverWaits on the
page's own state, never sleeps."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import SECRET_FLAG, api, mint
from test_demo_page import base_url, chromium, js_errors

WAIT_S = 20

STATE_JS = """
const rows = (sel) => Array.from(document.querySelectorAll(sel + ' tbody tr'),
                                 (tr) => Array.from(tr.children, (td) => td.textContent.trim()));
return {status: document.getElementById('status').textContent.trim(),
        error: document.getElementById('error').textContent.trim(),
        conns: rows('#connections'), top: rows('#top-symbols'), blocks: rows('#blocks'),
        broadcast: document.getElementById('broadcast-result').textContent.trim()};
"""


@pytest.fixture
def browser(gateway):
    yield from chromium()


def state(d):
    return d.execute_script(STATE_JS)


def wait_for(d, what, cond):
    try:
        return WebDriverWait(d, WAIT_S, poll_frequency=0.1).until(lambda d: (lambda s: s if cond(s) else None)(state(d)))
    except Exception:
        pytest.fail("timed out waiting for %s; page: %r" % (what, state(d)), pytrace=False)


def use_token(d, tok):
    box = d.find_element(By.ID, "token")
    box.clear()
    box.send_keys(tok)
    d.find_element(By.ID, "use-token").click()


def test_admin_page(gateway, browser, jclients):
    gw = gateway(SECRET_FLAG, "--feed.simulator=false")
    a = jclients.open(gw, token=mint("vic", "viewer"))
    a.subscribe(["AAPL", "MSFT"])
    b = jclients.open(gw, token=mint("tra", "trader"))
    b.subscribe(["AAPL"])
    admin = mint("root", "admin")
    r = api(gw, "POST", "/api/admin/block_ip", token=admin, body={"ip": "203.0.113.7", "duration_s": 600})
    assert r.status == 200, r
    r = api(gw, "GET", "/api/admin/blocks", token=admin)
    assert r.status == 200 and [x["ip"] for x in r.json()["blocks"]] == ["203.0.113.7"], r

    browser.get(base_url(gw) + "/admin.html")
    use_token(browser, admin)
    s = wait_for(browser, "two connections listed", lambda s: s["status"] == "connected" and len(s["conns"]) == 2)
    assert sorted(c[1] for c in s["conns"]) == ["tra", "vic"], s
    assert s["top"][:2] == [["AAPL", "2"], ["MSFT", "1"]], s
    assert s["blocks"] and s["blocks"][0][0] == "203.0.113.7" and s["blocks"][0][2] == "yes", s

    browser.find_element(By.CSS_SELECTOR, '#blocks tr[data-ip="203.0.113.7"] button.unblock').click()
    wait_for(browser, "the block gone", lambda s: s["blocks"] == [])
    assert api(gw, "GET", "/api/admin/blocks", token=admin).json()["blocks"] == []

    browser.find_element(By.ID, "broadcast-message").send_keys("maintenance at noon")
    browser.find_element(By.ID, "broadcast-roles").send_keys("viewer")
    browser.find_element(By.ID, "broadcast").click()
    wait_for(browser, "the broadcast's result", lambda s: s["broadcast"] == "sent to 1 client(s)")
    m, _ = a.until(lambda m: m.get("type") == "broadcast", what="broadcast")
    assert m["message"] == "maintenance at noon", m
    assert not js_errors(browser), js_errors(browser)


def test_admin_page_refuses_a_viewer_token(gateway, browser):
    gw = gateway(SECRET_FLAG)
    browser.get(base_url(gw) + "/admin.html")
    use_token(browser, mint("vic", "viewer"))
    s = wait_for(browser, "the refusal", lambda s: s["status"] == "refused")
    assert s["error"].startswith("403"), s
    assert s["conns"] == []
