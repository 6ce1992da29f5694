"""The web market watch's option chain view in a real headless Chromium, on the simulated market."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.clients.test_web import CHROMIUM, browser, open_page  # noqa: F401 (the browser fixture)
from tests.integration.chain.test_chain_e2e import chain_system

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (make browser installs Debian's chromium)"
)


async def test_the_chain_view_shows_a_live_chain_with_iv_and_greeks(browser: Browser, artifacts: Path) -> None:  # noqa: F811
    async with chain_system() as (_feed, service, server):
        page, errors = await open_page(browser, f"http://127.0.0.1:{server.port}/")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await page.fill("#chain-underlying", "reliance")
        await page.fill("#chain-strikes", "3")
        await page.click("#chain-show")
        rows = page.locator("#chain tbody tr")
        await expect(rows).to_have_count(7)
        atm = page.locator("#chain tbody tr.atm")
        await expect(atm).to_have_count(1)
        strike = await atm.locator("td.strike").inner_text()
        assert 1300 < float(strike.replace(",", "")) < 1700
        iv = float(await atm.locator("td.ce.iv").inner_text())
        assert 10 < iv < 40  # the simulator's smile is near 22 % at the money
        delta = float(await atm.locator("td.ce.delta").inner_text())
        assert 0.2 < delta < 0.8
        assert float(await atm.locator("td.pe.delta").inner_text()) < 0
        await expect(page.locator("#chain-summary")).to_contain_text("RELIANCE")
        await expect(page.locator("#chain-summary")).to_contain_text("Black-Scholes")
        # live: the ATM call's volume changes with its next trade
        first = await atm.locator("td.ce.volume").inner_text()
        await expect(page.locator("#chain tbody tr.atm td.ce.volume")).not_to_have_text(first)
        await page.screenshot(path=str(artifacts / "web-chain.png"), full_page=True)
        # stopping releases the chain: the feed is left with no leg of it
        await page.click("#chain-stop")
        await expect(rows).to_have_count(0)
        await expect(page.locator("#chain-info")).to_have_text("No chain shown.")
        for _ in range(100):
            if not service.streams:
                break
            await page.wait_for_timeout(50)
        assert not service.streams
        assert not errors, errors
