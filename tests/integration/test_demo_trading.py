"""The demo page's trader view (web/index.html, app.js, style.css) in a real
browser: the Trade panel (#trade-panel, #place-order), the orders list
(#orders) and the portfolio (#portfolio), shown only to roles that may trade.

Headless Chromium driven by Selenium (Debian packages chromium,
chromium-driver, python3-selenium), with the browser fixture of
test_demo_page.py. The gateway runs the simulator, so AAPL's price moves on
its own; a trader token (HS256, PyJWT) is pasted into #token. Every wait is a
WebDriverWait on the page's own state, never a sleep. A screenshot of the
trader view is left in /tmp/tickgate-trader.png for people to look at."""
import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import SECRET_FLAG, mint
from test_demo_page import base_url, browser, js_errors, row, status, wait_for  # noqa: F401 (fixture)

FEED_FLAGS = ("--feed.sim_ticks_per_s=200", "--feed.sim_seed=7")
SCREENSHOT = "/tmp/tickgate-trader.png"
PAPER_CASH = 1000000.0

# One round trip for the whole trading state of the page.
TRADING_JS = """
const text = (e) => e ? e.textContent.trim() : null;
const vis = (id) => { const e = document.getElementById(id); return !!e && !e.hidden && e.offsetParent !== null; };
const orders = Array.from(document.querySelectorAll('#orders tbody tr:not(.empty-row)'), (tr) => ({
  id: tr.dataset.orderId || null, status: tr.dataset.status || null,
  side: text(tr.querySelector('td.side')), qty: text(tr.querySelector('td.qty')),
  symbol: text(tr.querySelector('td.sym')), price: text(tr.querySelector('td.price')),
  text: text(tr)}));
const positions = Array.from(document.querySelectorAll('#portfolio tbody tr[data-symbol]'), (tr) => ({
  symbol: tr.dataset.symbol, qty: text(tr.querySelector('td.qty')), avg: text(tr.querySelector('td.avg')),
  last: text(tr.querySelector('td.last')), value: text(tr.querySelector('td.value'))}));
return {tradeVisible: vis('trade-panel'), portfolioVisible: vis('portfolio-panel'),
        cash: text(document.getElementById('cash')), orders: orders, positions: positions,
        symbols: Array.from(document.querySelectorAll('#trade-symbol option'), (o) => o.value),
        placeDisabled: document.getElementById('place-order').disabled};
"""


def trading(driver):
    return driver.execute_script(TRADING_JS)


def number(text):
    return float(text.replace(",", ""))


def connect_with(driver, gw, token):
    driver.get(base_url(gw) + "/")
    wait_for(driver, "the page to load", lambda d: status(d) == "disconnected")
    state = trading(driver)
    assert not state["tradeVisible"] and not state["portfolioVisible"], state
    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.ID, "connect").click()
    wait_for(driver, "#status to read 'connected'", lambda d: status(d) == "connected")


def test_trader_places_market_order(gateway, browser):
    gw = gateway(SECRET_FLAG, *FEED_FLAGS)
    connect_with(browser, gw, mint("alice", "trader"))
    wait_for(browser, "#role to read 'trader'", lambda d: d.find_element(By.ID, "role").text.strip() == "trader")
    # portfolio_subscribe is sent on connect: the snapshot fills the cash.
    wait_for(browser, "the trade and portfolio panels and the starting cash",
             lambda d: (lambda s: s["tradeVisible"] and s["portfolioVisible"] and s["cash"] == "1,000,000.00")(
                 trading(d)))

    symbol_input = browser.find_element(By.ID, "symbol-input")
    symbol_input.send_keys("AAPL")
    browser.find_element(By.ID, "add-symbol").click()
    wait_for(browser, "a first AAPL price", lambda d: (row(d, "AAPL") or {}).get("seq"))
    first = row(browser, "AAPL")["seq"]
    wait_for(browser, "the AAPL price to move", lambda d: (row(d, "AAPL") or {}).get("seq") not in (None, first))
    assert trading(browser)["symbols"] == ["AAPL"]

    Select(browser.find_element(By.ID, "trade-symbol")).select_by_value("AAPL")
    browser.find_element(By.CSS_SELECTOR, "label[for='side-buy']").click()
    qty = browser.find_element(By.ID, "trade-quantity")
    qty.clear()
    qty.send_keys("5")
    Select(browser.find_element(By.ID, "trade-type")).select_by_value("market")
    assert not browser.find_element(By.ID, "place-order").get_property("disabled")
    browser.find_element(By.ID, "place-order").click()

    def filled(d):
        s = trading(d)
        done = [o for o in s["orders"] if o["status"] == "filled"]
        return (s, done[0]) if done and s["positions"] else None

    state, order = wait_for(browser, "#orders to show the order filled and #portfolio an AAPL position", filled)
    assert len(state["orders"]) == 1, state
    assert re.fullmatch(r"o-[0-9a-f]+", order["id"] or ""), order
    assert (order["side"], order["qty"], order["symbol"]) == ("buy", "5", "AAPL"), order
    fill_price = number(order["price"])
    assert fill_price > 0, order

    pos = state["positions"]
    assert [p["symbol"] for p in pos] == ["AAPL"] and number(pos[0]["qty"]) == 5, pos
    assert number(pos[0]["avg"]) == pytest.approx(fill_price, abs=0.005), (pos, order)
    assert number(state["cash"]) == pytest.approx(PAPER_CASH - 5 * fill_price, abs=0.01), state
    # Market value follows the live price of the watchlist.
    wait_for(browser, "the market value from the live AAPL price",
             lambda d: (lambda p: p and p[0]["last"] not in (None, "\u2014")
                        and number(p[0]["value"]) == pytest.approx(5 * number(p[0]["last"]), abs=0.01))(
                 trading(d)["positions"]))

    browser.set_window_size(1280, 1300)  # the whole trader view in one picture
    browser.save_screenshot(SCREENSHOT)
    assert "trade_filled" in browser.find_element(By.ID, "log").text
    assert js_errors(browser) == []


def test_trader_rejection_and_limit_order_shown(gateway, browser):
    gw = gateway(SECRET_FLAG, *FEED_FLAGS)
    connect_with(browser, gw, mint("bob", "trader"))
    wait_for(browser, "the starting cash", lambda d: trading(d)["cash"] == "1,000,000.00")
    browser.find_element(By.ID, "symbol-input").send_keys("MSFT")
    browser.find_element(By.ID, "add-symbol").click()
    wait_for(browser, "a first MSFT price", lambda d: (row(d, "MSFT") or {}).get("price"))

    # Selling what bob does not hold: rejected, with the reason.
    browser.find_element(By.CSS_SELECTOR, "label[for='side-sell']").click()
    browser.find_element(By.ID, "place-order").click()
    wait_for(browser, "a rejected order", lambda d: any(o["status"] == "rejected" for o in trading(d)["orders"]))
    rejected = trading(browser)["orders"][0]
    assert "insufficient position" in rejected["text"], rejected

    # A limit buy far below the market rests: accepted, not filled.
    browser.find_element(By.CSS_SELECTOR, "label[for='side-buy']").click()
    Select(browser.find_element(By.ID, "trade-type")).select_by_value("limit")
    limit = browser.find_element(By.ID, "trade-limit")
    assert limit.is_enabled()
    limit.send_keys("0.01")
    browser.find_element(By.ID, "place-order").click()
    wait_for(browser, "an accepted limit order",
             lambda d: any(o["status"] == "accepted" for o in trading(d)["orders"]))
    state = trading(browser)
    assert [o["status"] for o in state["orders"]] == ["accepted", "rejected"], state
    assert state["positions"] == [] and state["cash"] == "1,000,000.00", state
    assert js_errors(browser) == []


def test_viewer_sees_no_trade_panel(gateway, browser):
    gw = gateway(SECRET_FLAG, *FEED_FLAGS)
    connect_with(browser, gw, mint("vera", "viewer"))
    wait_for(browser, "#role to read 'viewer'", lambda d: d.find_element(By.ID, "role").text.strip() == "viewer")
    state = trading(browser)
    assert not state["tradeVisible"] and not state["portfolioVisible"], state
    assert "portfolio_subscribe" not in browser.find_element(By.ID, "log").text
    assert js_errors(browser) == []
