"""The web market watch in a real headless Chromium (Debian's package), driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import re
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from openalgo_proxy.proxy.server import ProxyServer
from tests.clients.conftest import LiveSystem
from tests.support import free_port, running_system

CHROMIUM = os.environ.get("OPENALGO_PROXY_CHROMIUM", "/usr/bin/chromium")
PRICE = re.compile(r"^\d+\.\d\d$")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (make browser installs Debian's chromium)"
)


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
    assert 2500 < float(await tcs.locator("td.ltp").inner_text()) < 4000  # simulated TCS trades near 3120

    await tcs.click()
    await expect(page.locator("#ladder-name")).to_have_text("NSE:TCS")
    ladder = page.locator("#ladder tbody tr")
    await expect(ladder).to_have_count(5)
    best_bid = float(await ladder.first.locator("td.bid").inner_text())
    best_ask = float(await ladder.first.locator("td.ask").inner_text())
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
