"""The web market watch in a real headless Chromium (Debian's package), driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from openalgo_proxy.brokers.market import UNIVERSE
from openalgo_proxy.proxy.server import ProxyServer
from tests.clients.conftest import LiveSystem
from tests.support import free_port, running_system

CHROMIUM = os.environ.get("OPENALGO_PROXY_CHROMIUM", "/usr/bin/chromium")
PRICE = re.compile(r"^(\d{1,3}|\d{1,2}(,\d\d)*,\d{3})\.\d\d$")  # Indian digit grouping: 1,27,500.00
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (make browser installs Debian's chromium)"
    ),
    pytest.mark.xdist_group("live-system"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    return page, errors


def test_proxy_serves_the_page_and_its_files(live_system: LiveSystem) -> None:
    with urllib.request.urlopen(f"{live_system.http}/", timeout=5) as response:
        html = response.read().decode()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/html")
    assert '<script src="/web/app.js">' in html and "http" not in html.split("<body>")[1]  # no CDN
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        with urllib.request.urlopen(f"{live_system.http}/web/{name}", timeout=5) as response:
            assert response.status == 200 and kind in response.headers["Content-Type"]


async def test_add_symbol_live_table_depth_ladder_and_screenshot(
    browser: Browser, live_system: LiveSystem, artifacts: Path
) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.fill("#add-input", "nse:tcs")
    await page.click("#add-button")
    tcs = page.locator('#quotes tr[data-key="NSE:TCS"]')
    await expect(tcs.locator("td.ltp")).to_have_text(PRICE)
    first = await tcs.locator("td.volume").inner_text()
    # live: the traded volume only grows, so the cell changes with the next trade
    await expect(tcs.locator("td.volume")).not_to_have_text(first)
    assert 2500 < number(await tcs.locator("td.ltp").inner_text()) < 4000  # simulated TCS trades near 3120

    await tcs.click()
    await expect(page.locator("#ladder-name")).to_have_text("NSE:TCS")
    ladder = page.locator("#ladder tbody tr")
    await expect(ladder).to_have_count(5)
    best_bid = number(await ladder.first.locator("td.bid").inner_text())
    best_ask = number(await ladder.first.locator("td.ask").inner_text())
    assert 0 < best_bid < best_ask
    await page.wait_for_timeout(800)  # let a flash or two show in the picture
    shot = artifacts / "web-market-watch.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    await page.locator('#quotes tr[data-key="NSE:INFY"] td.remove button').click()
    await expect(page.locator('#quotes tr[data-key="NSE:INFY"]')).to_have_count(0)
    await page.reload()  # the watchlist survives a reload
    await expect(page.locator('#quotes tr[data-key="NSE:TCS"]')).to_have_count(1)
    await expect(page.locator('#quotes tr[data-key="NSE:INFY"]')).to_have_count(0)
    assert errors == []


async def test_asks_for_api_key_and_reconnects_after_proxy_restart(browser: Browser) -> None:
    port = free_port()
    auth = {"mode": "api_key", "api_keys": ["web-s3cret"]}
    async with running_system(proxy={"port": port}, auth=auth, ticks_per_second=10) as system:
        page, errors = await open_page(browser, f"http://127.0.0.1:{port}/")
        dialog = page.locator("#auth-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "auth")
        await page.fill("#auth-key", "wrong-key")
        await page.click("#auth-form button[type=submit]")
        await expect(page.locator("#auth-reason")).to_have_text("The API key was rejected.")
        await expect(page.locator("#conn-detail")).to_contain_text("AUTHENTICATION_ERROR")
        await expect(dialog).to_be_visible()
        await page.fill("#auth-key", "web-s3cret")
        await page.click("#auth-form button[type=submit]")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await expect(page.locator('#quotes tr[data-key="NSE:RELIANCE"] td.ltp')).to_have_text(PRICE)

        await system.proxy.stop(within=2.0)
        await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        restarted = ProxyServer(system.proxy.cfg, system.proxy.auth, ctx=system.ctx)
        await restarted.start()
        try:
            await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=20_000)
            volume = page.locator('#quotes tr[data-key="NSE:RELIANCE"] td.volume')
            before = await volume.inner_text()
            await expect(volume).not_to_have_text(before)  # ticks flow again: re-authenticated, resubscribed
            assert not await dialog.is_visible()  # the key was kept for the session
            assert errors == []
        finally:
            with contextlib.suppress(Exception):
                await page.close()
            await restarted.stop(within=2.0)


def number(text: str) -> float:
    """A price or quantity as the page shows it (Indian digit grouping) as a float."""
    return float(text.replace(",", ""))


def listed(exchange: str) -> str:
    """The simulated market's first instrument on an exchange (futures names follow the date)."""
    return next(listing.symbol for listing in UNIVERSE if listing.exchange == exchange)


async def test_ltp_mode_shows_only_what_it_carries(browser: Browser, live_system: LiveSystem) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    reliance = page.locator('#quotes tr[data-key="NSE:RELIANCE"]')
    await expect(reliance.locator("td.high")).to_have_text(PRICE)  # quote mode first
    await page.select_option("#mode-select", "1")
    await expect(reliance.locator("td.ltp")).to_have_text(PRICE)
    # the selected row also streams depth for the ladder; its row must not take Quote values from it
    await expect(page.locator("#ladder tbody tr")).to_have_count(5)
    await expect(reliance.locator("td.time")).not_to_have_text("-")
    first = await reliance.locator("td.time").inner_text()
    await expect(reliance.locator("td.time")).not_to_have_text(first, timeout=20_000)  # several ticks later
    for column in ("change", "change-percent", "volume", "high", "low"):
        assert await reliance.locator(f"td.{column}").inner_text() in ("", "-"), column
        await expect(reliance.locator(f"td.{column}")).to_be_hidden()
        await expect(page.locator(f"#quotes th.{column}")).to_be_hidden()
    await page.select_option("#mode-select", "2")  # back to quote: the columns return with values
    await expect(reliance.locator("td.high")).to_have_text(PRICE)
    assert errors == []


async def test_formatting_rules_in_the_browser(browser: Browser, live_system: LiveSystem) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    cases = {
        "WatchFormat.signed(-0.001, 2, '%')": "0.00%",
        "WatchFormat.signed(-0.004, 2)": "0.00",
        "WatchFormat.signed(0.25, 2, '%')": "+0.25%",
        "WatchFormat.signed(-3.0025, 4)": "-3.0025",
        "WatchFormat.price(127500, 2)": "1,27,500.00",
        "WatchFormat.price(-0.0001, 2)": "0.00",
        "WatchFormat.price(89.1525, 4)": "89.1525",
        "WatchFormat.integer(12345678)": "1,23,45,678",
        "String(WatchFormat.decimalsFor(0.0025, 'NSE'))": "4",
        "String(WatchFormat.decimalsFor(0.05, 'NSE'))": "2",
        "String(WatchFormat.decimalsFor(1, 'MCX'))": "2",
        "String(WatchFormat.decimalsFor(undefined, 'CDS'))": "4",
        "String(WatchFormat.widen(2, 12.3425))": "4",
    }
    for expression, shown in cases.items():
        assert await page.evaluate(expression) == shown, expression
    assert errors == []


async def test_prices_follow_the_tick_size_with_indian_grouping(browser: Browser, live_system: LiveSystem) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    usdinr = f"CDS:{listed('CDS')}"  # moves in 0.0025 steps
    await page.fill("#add-input", f"{usdinr} NSE:MARUTI")
    await page.press("#add-input", "Enter")
    await expect(page.locator(f'#quotes tr[data-key="{usdinr}"] td.ltp')).to_have_text(re.compile(r"^\d\d\.\d{4}$"))
    # MARUTI trades near 15,900: grouped like the volumes
    await expect(page.locator('#quotes tr[data-key="NSE:MARUTI"] td.ltp')).to_have_text(
        re.compile(r"^\d\d,\d{3}\.\d\d$")
    )
    await expect(page.locator('#quotes tr[data-key="NSE:MARUTI"] td.high')).to_have_text(
        re.compile(r"^\d\d,\d{3}\.\d\d$")
    )
    await page.locator(f'#quotes tr[data-key="{usdinr}"]').click()
    ladder = page.locator("#ladder tbody tr")
    await expect(ladder).to_have_count(5)
    await expect(ladder.first.locator("td.bid")).to_have_text(re.compile(r"^\d\d\.\d{4}$"))
    # both sides in one evaluation: a tick cannot re-render the ladder between reading bids and asks
    sides = await page.evaluate(
        "() => ['td.bid', 'td.ask'].map(s => Array.from(document.querySelectorAll('#ladder ' + s), td => td.innerText))"
    )
    bids, asks = ([number(text) for text in side] for side in sides)
    assert bids[0] < asks[0], (bids, asks)  # 0.0025 apart at least: never shown equal
    assert len(set(bids)) == len(bids) and len(set(asks)) == len(asks), (bids, asks)  # no collapsed levels
    assert errors == []


async def test_an_index_row_has_no_zero_depth_ladder(browser: Browser, live_system: LiveSystem) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.locator('#quotes tr[data-key="NSE_INDEX:NIFTY"]').click()
    await expect(page.locator("#ladder-info")).to_contain_text("index has no order book")
    await expect(page.locator("#ladder")).to_be_hidden()
    await expect(page.locator("#ladder tbody tr")).to_have_count(0)
    await page.locator('#quotes tr[data-key="NSE:RELIANCE"]').click()  # a stock has its ladder back
    await expect(page.locator("#ladder tbody tr")).to_have_count(5)
    await expect(page.locator("#ladder")).to_be_visible()
    assert errors == []


OVERFLOWING = """() => [...document.querySelectorAll('section, aside, main, body')]
    .filter((e) => e.scrollWidth > e.clientWidth + 1)
    .map((e) => `${e.tagName.toLowerCase()} ${e.scrollWidth} > ${e.clientWidth}`)"""


async def test_layout_fits_a_wide_screen_and_a_phone(
    browser: Browser, live_system: LiveSystem, artifacts: Path
) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    await page.set_viewport_size({"width": 1400, "height": 900})
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    wide = [f"NFO:{listed('NFO')}", f"CDS:{listed('CDS')}", "NSE:MARUTI", "NSE_INDEX:BANKNIFTY"]
    await page.fill("#add-input", " ".join(wide))
    await page.press("#add-input", "Enter")
    for key in wide:
        await expect(page.locator(f'#quotes tr[data-key="{key}"] td.high')).not_to_have_text("-")
    await expect(page.locator('#quotes tr[data-key="NSE_INDEX:BANKNIFTY"] td.volume')).to_have_text("-")  # no volume
    await page.locator('#quotes tr[data-key="NSE:MARUTI"]').click()
    await expect(page.locator("#ladder tbody tr")).to_have_count(5)
    assert await page.evaluate(OVERFLOWING) == []  # no clipped or scrolled columns
    for column in ("ltp", "change", "change-percent", "volume", "high", "low", "time"):
        await expect(page.locator(f"#quotes th.{column}")).to_be_visible()
    await page.screenshot(path=str(artifacts / "web-market-watch-1400.png"), full_page=True)

    await page.set_viewport_size({"width": 375, "height": 812})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    assert await page.evaluate(OVERFLOWING) == []
    for column in ("name", "ltp", "change-percent"):
        await expect(page.locator(f"#quotes th.{column}")).to_be_visible()
    await expect(page.locator("#ladder td.bid").first).to_be_visible()
    await page.screenshot(path=str(artifacts / "web-market-watch-phone.png"), full_page=True)
    assert errors == []


async def test_without_a_feed_the_page_says_so_and_why(browser: Browser) -> None:
    port = free_port()
    async with running_system(proxy={"port": port}, with_feed=False) as system:
        page, errors = await open_page(browser, f"http://127.0.0.1:{port}/")
        conn = page.locator("#conn")
        await expect(conn).to_have_attribute("data-state", "no-feed")
        await expect(page.locator("#conn-state")).to_have_text("no broker feed")
        await expect(page.locator("#conn-detail")).to_contain_text("BROKER_UNAVAILABLE")
        await page.wait_for_timeout(1500)  # rechecked every few seconds: still not live
        await expect(conn).to_have_attribute("data-state", "no-feed")
        await expect(page.locator('#quotes tr[data-key="NSE:RELIANCE"] td.ltp')).to_have_text("-")
        await system.feed.start()  # a feed arrives: the page goes live and its rows stream
        try:
            await expect(conn).to_have_attribute("data-state", "live", timeout=20_000)
            await expect(page.locator('#quotes tr[data-key="NSE:RELIANCE"] td.ltp')).to_have_text(PRICE)
            assert errors == []
        finally:
            await system.feed.stop()


async def test_watching_another_proxy_needs_its_origin_allowlist(browser: Browser, live_system: LiveSystem) -> None:
    nobody = free_port()
    page, errors = await open_page(browser, f"{live_system.http}/?ws=ws://127.0.0.1:{nobody}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#conn-detail")).to_contain_text(f"cannot reach ws://127.0.0.1:{nobody}/")
    await page.close()

    other = free_port()
    async with running_system(proxy={"port": other}, ticks_per_second=5):
        page, errors = await open_page(browser, f"{live_system.http}/?ws=ws://127.0.0.1:{other}/")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "refused")
        await expect(page.locator("#conn-detail")).to_contain_text("origin not allowed")
        message = page.locator("#message")
        await expect(message).to_contain_text("allowed_origins")
        await expect(message).to_contain_text(f'["{live_system.http}"]')  # exactly what to configure
        assert errors == []

    allowing = free_port()
    async with running_system(proxy={"port": allowing, "allowed_origins": [live_system.http]}, ticks_per_second=5):
        page, errors = await open_page(browser, f"{live_system.http}/?ws=ws://127.0.0.1:{allowing}/")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await expect(page.locator('#quotes tr[data-key="NSE:RELIANCE"] td.ltp')).to_have_text(PRICE)
        assert errors == []


async def test_search_as_you_type_adds_the_chosen_instrument(
    browser: Browser, live_system: LiveSystem, artifacts: Path
) -> None:
    page, errors = await open_page(browser, f"{live_system.http}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    # the page asks once whether the proxy answers `search` (an older one answers INVALID_ACTION)
    await expect(page.locator("#add-form")).to_have_attribute("data-search", "supported")
    await page.locator("#add-input").press_sequentially("marut", delay=30)
    suggestions = page.locator("#suggestions li")
    await expect(suggestions.first).to_have_attribute("data-key", "NSE:MARUTI")
    await page.screenshot(path=str(artifacts / "web-market-watch-search.png"))
    await suggestions.first.click()
    maruti = page.locator('#quotes tr[data-key="NSE:MARUTI"] td.ltp')
    await expect(maruti).to_have_text(re.compile(r"^\d\d,\d{3}\.\d\d$"))
    await expect(page.locator("#suggestions")).to_be_hidden()
    await expect(page.locator("#add-input")).to_have_value("")
    # the keyboard: type, arrow down, Enter
    await page.locator("#add-input").press_sequentially("CDS:USD", delay=30)
    await expect(suggestions.first).to_have_attribute("data-key", re.compile(r"^CDS:USDINR"))
    await page.press("#add-input", "ArrowDown")
    await page.press("#add-input", "Enter")
    await expect(page.locator(f'#quotes tr[data-key="CDS:{listed("CDS")}"] td.ltp')).to_have_text(
        re.compile(r"^\d\d\.\d{4}$")
    )
    sizes = await page.evaluate("JSON.parse(localStorage.getItem('openalgo-proxy.tick-sizes'))")
    assert sizes[f"CDS:{listed('CDS')}"] == 0.0025 and sizes["NSE:MARUTI"] > 0  # from the search results
    assert errors == []


async def test_a_long_watchlist_learns_tick_sizes_within_the_rate_budget(
    browser: Browser, live_system: LiveSystem
) -> None:
    stocks = [f"NSE:{listing.symbol}" for listing in UNIVERSE if listing.exchange == "NSE"][:40]
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.add_init_script(f"localStorage.setItem('openalgo-proxy.watchlist', {json.dumps(json.dumps(stocks))})")
    await page.goto(f"{live_system.http}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#quotes tbody tr")).to_have_count(len(stocks))
    # one search per row for its tick size, spaced: never RATE_LIMITED, never closed for too many requests
    learnt = "Object.keys(JSON.parse(localStorage.getItem('openalgo-proxy.tick-sizes') || '{}')).length"
    await page.wait_for_function(f"{learnt} >= {len(stocks)}", timeout=60_000)  # a loaded machine: slow
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert "reconnect" not in await page.locator("#conn-detail").inner_text()
    assert errors == []
