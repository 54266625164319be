"""The demo page at / (web/index.html, app.js, style.css) in a real browser.

Headless Chromium driven by Selenium (Debian packages chromium,
chromium-driver, python3-selenium) opens the page served by the gateway with
?symbols=...&autoconnect=1, which connects anonymously and subscribes; the
built-in simulator then makes the prices tick. Every wait is a WebDriverWait
on the page's own state, never a sleep. A screenshot of the live page is left
in /tmp/tickgate-demo.png for people to look at (not asserted)."""
import os
import re
import shutil
import tempfile
import urllib.request

import pytest

from conftest import SECRET_FLAG, mint

# make test installs selenium, chromium and chromium-driver (scripts/deps.sh):
# a missing one is a failure, never a silent skip.
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
FEED_FLAGS = ("--feed.sim_ticks_per_s=200", "--feed.sim_seed=7")
WAIT_S = 20
SCREENSHOT = "/tmp/tickgate-demo.png"
NUMBER_RE = re.compile(r"-?\d+(\.\d+)?")

# One round trip that reads a whole table row (None while it does not exist),
# so a wait never trips over an element replaced between two lookups.
ROW_JS = """
const tr = document.querySelector('#prices tr[data-symbol="' + arguments[0] + '"]');
if (!tr) return null;
const out = {};
for (const c of ['price', 'bid', 'ask', 'change', 'change-pct', 'volume', 'seq', 'updated']) {
  const td = tr.querySelector('td.' + c);
  out[c] = td ? td.textContent.trim() : null;
  if (td && (c === 'change' || c === 'change-pct')) out[c + '-class'] = td.className;
}
return out;
"""

STATE_JS = """
const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
return {status: text('status'), close: text('close-info'), notice: text('notice'),
        role: text('role'), limit: text('limit'),
        rows: Array.from(document.querySelectorAll('#prices tr[data-symbol]'), (r) => r.dataset.symbol),
        log: Array.from(document.querySelectorAll('#log li'), (li) => li.textContent).slice(-15)};
"""


def base_url(gw):
    host = "[%s]" % gw.host if ":" in gw.host else gw.host
    return "http://%s:%d" % (host, gw.port)


def chromium(*extra_args):
    """Headless Chromium with a fresh profile (and extra_args); yields the
    driver and quits it."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), "%s missing (apt-get install chromium chromium-driver)" % path
    profile = tempfile.mkdtemp(prefix="tickgate-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900", "--user-data-dir=" + profile) + extra_args:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(gateway):
    """Headless Chromium with a fresh profile. Depends on `gateway` so that it
    is torn down (its WebSocket closed) before the gateways are stopped."""
    yield from chromium()


def wait_for(driver, what, cond):
    """WebDriverWait for cond(driver) to be truthy; on timeout fail with what
    the page showed (status, close reason, notice, the last log lines)."""
    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(cond)
    except TimeoutException:
        pass
    state = driver.execute_script(STATE_JS)
    log = "\n    ".join(state.pop("log"))
    pytest.fail("timed out after %d s waiting for %s\npage: %s\nlog:\n    %s"
                % (WAIT_S, what, state, log), pytrace=False)


def row(driver, symbol):
    return driver.execute_script(ROW_JS, symbol)


def status(driver):
    return driver.find_element(By.ID, "status").text.strip()


def js_errors(driver):
    return [e["message"] for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")]


def test_page_files_served(gateway):
    gw = gateway()
    for path, ctype, needle in (("/", "text/html", b'id="prices"'),
                                ("/index.html", "text/html", b"app.js"),
                                ("/app.js", "javascript", b"price_update"),
                                ("/client/index.js", "javascript", b"TickgateClient"),
                                ("/style.css", "text/css", b".flash-up")):
        with urllib.request.urlopen(base_url(gw) + path, timeout=10) as resp:
            assert resp.status == 200, path
            assert ctype in resp.headers.get("Content-Type", ""), (path, resp.headers.get("Content-Type"))
            assert needle in resp.read(), path


def test_live_prices_tick(gateway, browser):
    gw = gateway(*FEED_FLAGS)
    browser.get(base_url(gw) + "/?symbols=AAPL,MSFT&autoconnect=1")

    wait_for(browser, "#status to read 'connected'", lambda d: status(d) == "connected")
    wait_for(browser, "a first AAPL price", lambda d: (row(d, "AAPL") or {}).get("price"))
    assert browser.find_element(By.ID, "role").text.strip() == "anonymous"
    assert browser.find_element(By.ID, "limit").text.strip().startswith("3")

    first = {sym: row(browser, sym) for sym in ("AAPL", "MSFT")}

    def ticked(d):
        for sym, before in first.items():
            now = row(d, sym)
            if now and now["seq"] and before and now["seq"] != before["seq"]:
                return sym, now
        return None

    sym, now = wait_for(browser, "the AAPL or MSFT seq to change", ticked)
    browser.save_screenshot(SCREENSHOT)

    assert NUMBER_RE.fullmatch(now["price"]), now
    assert float(now["price"]) > 0, now
    assert now["seq"].isdigit(), now
    for cell in ("bid", "ask"):
        assert NUMBER_RE.fullmatch(now[cell]), (cell, now)
    assert ("pos" in now["change-class"]) != ("neg" in now["change-class"]), now
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", now["updated"]), now
    assert status(browser) == "connected"

    # The x button unsubscribes: the row goes, the server confirms.
    browser.find_element(By.CSS_SELECTOR, '#prices tr[data-symbol="MSFT"] button.remove').click()
    wait_for(browser, "the MSFT row to go", lambda d: row(d, "MSFT") is None)
    wait_for(browser, "unsubscription_confirmed in the log",
             lambda d: "unsubscription_confirmed" in d.find_element(By.ID, "log").text)
    assert row(browser, "AAPL") is not None
    assert js_errors(browser) == []


def test_anonymous_symbol_limit_shown(gateway, browser):
    gw = gateway(*FEED_FLAGS)
    browser.get(base_url(gw) + "/?symbols=AAPL,MSFT,NVDA,TSLA&autoconnect=1")

    wait_for(browser, "the limit_exceeded reason to be shown",
             lambda d: "limit_exceeded" in d.find_element(By.ID, "notice").text)
    wait_for(browser, "three rows left",
             lambda d: len(d.find_elements(By.CSS_SELECTOR, "#prices tr[data-symbol]")) == 3)
    assert status(browser) == "connected"
    assert js_errors(browser) == []


RECOV_JS = """
const tr = document.querySelector('#prices tr[data-symbol="' + arguments[0] + '"]');
const r = tr && tr.querySelector('.recov');
return r ? r.textContent.trim() : null;
"""


def test_reconnect_recovers_and_shows_it(gateway, browser):
    """A forced reconnect (Disconnect, then Connect): the page re-subscribes
    with the last seq and epoch of each symbol and shows "recovered"."""
    gw = gateway(*FEED_FLAGS)
    browser.get(base_url(gw) + "/?symbols=AAPL&autoconnect=1")
    wait_for(browser, "#status to read 'connected'", lambda d: status(d) == "connected")
    wait_for(browser, "an AAPL tick (seq > 0)", lambda d: ((row(d, "AAPL") or {}).get("seq") or "0").isdigit()
             and int(row(d, "AAPL")["seq"]) > 0)
    assert browser.execute_script(RECOV_JS, "AAPL") == ""
    browser.find_element(By.ID, "disconnect").click()
    wait_for(browser, "#status to read 'disconnected'", lambda d: status(d) == "disconnected")
    browser.find_element(By.ID, "connect").click()
    wait_for(browser, "the AAPL row to show 'recovered'", lambda d: d.execute_script(RECOV_JS, "AAPL") == "recovered")
    log = browser.find_element(By.ID, "log").text
    assert '"recover"' in log and '"recovered"' in log, log[-2000:]
    assert "Reconnected: recovered AAPL" in browser.find_element(By.ID, "notice").text
    assert js_errors(browser) == []


def test_delayed_rows_marked(gateway, browser):
    """A viewer entitled to AAPL only delayed (delayed_symbols): the row is
    marked delayed, so nobody takes its prices for live ones."""
    gw = gateway(SECRET_FLAG, "--feed.delay_s=1", *FEED_FLAGS)
    browser.get(base_url(gw) + "/?symbols=AAPL")
    wait_for(browser, "the page to load", lambda d: status(d) == "disconnected")
    browser.find_element(By.ID, "token").send_keys(mint("dora", "viewer", symbols=[], delayed_symbols=["AAPL"]))
    browser.find_element(By.ID, "connect").click()
    wait_for(browser, "a delayed AAPL tick (seq > 0)", lambda d: int((row(d, "AAPL") or {}).get("seq") or 0) > 0)
    tr = browser.find_element(By.CSS_SELECTOR, '#prices tr[data-symbol="AAPL"]')
    assert "delayed" in tr.get_attribute("class").split(), tr.get_attribute("class")
    assert tr.find_element(By.CSS_SELECTOR, ".tag").text.strip() == "delayed"
    assert js_errors(browser) == []
