"""`openalgo-proxy watch` (the real CLI) in a pseudo-terminal, its screen read through a terminal
emulator (pyte) as the user sees it: layout at 80x24 and 120 columns, errors in the status bar."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest

from openalgo_proxy.brokers.market import UNIVERSE
from tests.clients.conftest import LiveSystem
from tests.support import System, free_port, running_system

pytestmark = pytest.mark.xdist_group("live-system")

PRICE = r"(?:\d{1,3}|\d{1,2}(?:,\d\d)*,\d{3})\.\d\d"  # Indian digit grouping: 1,485.05


def listed(exchange: str) -> str:
    """The simulated market's first instrument on an exchange (futures names follow the date)."""
    return next(listing.symbol for listing in UNIVERSE if listing.exchange == exchange)


class Terminal:
    """The watch running in a pty of `rows` x `columns`, rendered by a terminal emulator."""

    def __init__(self, args: list[str], rows: int, columns: int) -> None:
        env = {**os.environ, "TERM": "xterm-256color"}
        for fixed in ("NO_COLOR", "COLUMNS", "LINES"):  # the size is the pty's (and follows a resize)
            env.pop(fixed, None)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "openalgo_proxy", "watch", *args],
            dimensions=(rows, columns),
            env=env,
            encoding="utf-8",
            codec_errors="replace",
            timeout=30,
        )
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.Stream(self.screen)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait(self, pattern: str, within: float = 20.0) -> re.Match[str]:
        found = re.compile(pattern)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                pass
            match = found.search(self.text())
            if match:
                return match
        raise AssertionError(f"{pattern!r} not on screen within {within} s; screen:\n{self.text()}")

    def resize(self, rows: int, columns: int) -> None:
        self.screen.resize(rows, columns)
        self.child.setwinsize(rows, columns)

    def line(self, number: int) -> str:
        return self.screen.display[number]

    def quit(self, key: str = "q") -> int | None:
        self.child.send(key)
        self.child.expect(pexpect.EOF, timeout=15)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        self.child.close(force=True)


@pytest.mark.parametrize("quit_key", ["q", "\x03"], ids=["q", "ctrl-c"])
def test_watch_renders_live_values_and_quits(live_system: LiveSystem, quit_key: str) -> None:
    term = Terminal(["NSE:RELIANCE", "NSE_INDEX:NIFTY", "--url", live_system.url], 32, 160)
    try:
        # a live LTP next to its instrument, and the status bar counting ticks while live
        row = term.wait(rf"NSE:RELIANCE\s+({PRICE})")
        assert 1000 < float(row.group(1).replace(",", "")) < 2000  # the simulated RELIANCE trades near 1485
        status = term.wait(r"live\s+ws://\S+\s+mode quote\s+ticks ([1-9][\d,]*)", within=15)
        assert int(status.group(1).replace(",", "")) > 0
        term.wait(r"Depth NSE:RELIANCE", within=5)  # the ladder follows the cursor row
        assert term.quit(quit_key) == 0
    finally:
        term.close()


def test_at_80x24_the_table_keeps_whole_prices_and_the_ladder(live_system: LiveSystem, artifacts: Path) -> None:
    # lower case as typed: normalised to NSE:INFY like the web page
    names = ["NSE:RELIANCE", "nse:infy", "NSE:MARUTI", f"NFO:{listed('NFO')}", "NSE_INDEX:NIFTY"]
    term = Terminal([*names, "--url", live_system.url], 24, 80)
    try:
        term.wait(rf"NSE:INFY\s+{PRICE}")
        term.wait(rf"NSE:MARUTI\s+\d\d,\d{{3}}\.\d\d\s+[▲▼ ]\s+[+-]?{PRICE}\s+[+-]?\d+\.\d\d%\s+[\d,]+\s")
        term.wait(rf"NSE_INDEX:NIFTY\s+{PRICE}")
        term.wait(rf"NFO:{listed('NFO')}\s+{PRICE}")
        ladder = term.wait(rf"({PRICE})\s+({PRICE})\s+[\d,]+", within=10)  # bid, ask, qty: under the table
        assert float(ladder.group(1).replace(",", "")) < float(ladder.group(2).replace(",", ""))
        screen = term.text()
        (artifacts / "watch-80x24.txt").write_text(screen + "\n")
        assert "…" not in screen, screen  # nothing truncated
        header = next(line for line in screen.splitlines() if "Instrument" in line)
        for column in ("LTP", "Chg", "Chg%", "Volume", "Time"):
            assert re.search(rf"\b{re.escape(column)}(\s|$)", header), (column, header)
        assert "Depth NSE:RELIANCE" in screen
        # widened to 170 columns: every column, and the ladder beside the table
        term.resize(30, 170)
        term.wait(r"Instrument\s+LTP\s+Chg\s+Chg%\s+Volume\s+High\s+Low\s+Time\s+│?\s*Depth NSE:RELIANCE")
        assert "…" not in term.text(), term.text()
        assert term.quit() == 0
    finally:
        term.close()


def test_at_120_columns_bid_and_ask_are_whole(live_system: LiveSystem, artifacts: Path) -> None:
    term = Terminal(["NSE:MARUTI", "NSE:RELIANCE", "--url", live_system.url, "--mode", "quote"], 30, 120)
    try:
        term.wait(r"NSE:MARUTI\s+\d\d,\d{3}\.\d\d")
        # a ladder row: bid qty, bid, ask, ask qty with the prices whole (MARUTI near 15,900)
        term.wait(r"[\d,]+\s+(\d\d,\d{3}\.\d\d)\s+(\d\d,\d{3}\.\d\d)\s+[\d,]+", within=10)
        screen = term.text()
        (artifacts / "watch-120.txt").write_text(screen + "\n")
        assert "…" not in screen, screen
        header = next(line for line in screen.splitlines() if "Instrument" in line)
        for column in ("LTP", "Chg", "Chg%", "Volume", "High", "Low", "Time"):
            assert re.search(rf"\b{re.escape(column)}(\s|$)", header), (column, header)
        assert term.quit() == 0
    finally:
        term.close()


def test_ltp_mode_shows_only_ltp_and_time(live_system: LiveSystem) -> None:
    term = Terminal(["NSE:RELIANCE", "NSE:INFY", "--url", live_system.url, "--mode", "ltp"], 24, 100)
    try:
        term.wait(rf"NSE:RELIANCE\s+{PRICE}\s+[▲▼ ]\s+\d\d:\d\d:\d\d")  # LTP then time, nothing between
        term.wait(r"Depth NSE:RELIANCE")
        header = next(line for line in term.text().splitlines() if "Instrument" in line)
        assert "High" not in header and "Volume" not in header and "Chg" not in header, header
        assert term.quit() == 0
    finally:
        term.close()


def test_dead_proxy_is_reported_in_the_status_bar(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    term = Terminal(["NSE:RELIANCE", "--url", url], 24, 100)
    try:
        term.wait(r"● connecting\s+connection refused.*\(attempt [2-9]")
        assert "connection refused" in term.line(22), term.line(22)  # the status bar, above the footer
        screen = term.text()
        assert "openalgo-proxy watch" in term.line(0), term.line(0)  # the header is not overwritten
        assert "client:" not in screen and "INFO" not in screen, screen  # no log line over the screen
        assert term.quit() == 0
    finally:
        term.close()


async def test_tls_failure_is_named_and_ca_option_trusts_a_private_ca(tls_system: System, ca_file: Path) -> None:
    untrusting = Terminal(["NSE:RELIANCE", "--url", tls_system.url], 24, 120)
    try:
        await asyncio.to_thread(untrusting.wait, r"TLS certificate verify failed: unable to get local issuer")
        await asyncio.to_thread(untrusting.wait, r"--ca FILE")
    finally:
        untrusting.close()
    trusting = Terminal(["NSE:RELIANCE", "--url", tls_system.url, "--ca", str(ca_file)], 24, 120)
    try:
        await asyncio.to_thread(trusting.wait, rf"NSE:RELIANCE\s+{PRICE}")
        await asyncio.to_thread(trusting.wait, r"● live\s+wss://")
        assert await asyncio.to_thread(trusting.quit) == 0  # a clean close before the proxy stops
    finally:
        trusting.close()


def test_ca_option_with_an_unreadable_file_fails_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.pem"
    out = pexpect.run(
        f"{sys.executable} -m openalgo_proxy watch NSE:INFY --ca {missing}", withexitstatus=True, timeout=30
    )
    text, status = out[0].decode(), out[1]
    assert status == 2 and f"cannot load CA certificates from {missing}" in text, text
    assert "Traceback" not in text


async def test_without_a_feed_the_status_bar_says_so_until_one_arrives() -> None:
    port = free_port()
    async with running_system(proxy={"port": port}, with_feed=False, ticks_per_second=5) as system:
        term = Terminal(["NSE:RELIANCE", "--url", f"ws://127.0.0.1:{port}"], 24, 120)
        try:
            await asyncio.to_thread(term.wait, r"no broker feed behind the proxy \(BROKER_UNAVAILABLE")
            await system.feed.start()
            try:
                await asyncio.to_thread(term.wait, rf"NSE:RELIANCE\s+{PRICE}")  # subscribed again by itself
                await asyncio.to_thread(term.wait, r"● live\s+ws://\S+\s+mode quote\s+ticks [1-9][\d,]*")
                assert "BROKER_UNAVAILABLE" not in term.line(22), term.line(22)
                assert await asyncio.to_thread(term.quit) == 0
            finally:
                await system.feed.stop()
        finally:
            term.close()
