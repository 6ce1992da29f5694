"""`openalgo-proxy watch` (the real CLI) in a pseudo-terminal against a running system."""

from __future__ import annotations

import os
import re
import sys
import time

import pexpect
import pytest

from tests.clients.conftest import LiveSystem

ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|[=>78DEHMc])")


def screen_text(raw: str) -> str:
    """The terminal output with control sequences removed (cursor moves become spaces)."""
    return ANSI.sub(" ", raw)


def read_until(child: pexpect.spawn, pattern: re.Pattern[str], within: float) -> re.Match[str]:
    deadline = time.monotonic() + within
    seen = ""
    while time.monotonic() < deadline:
        try:
            seen += child.read_nonblocking(65536, timeout=0.2)
        except pexpect.TIMEOUT:
            pass
        found = pattern.search(screen_text(seen))
        if found:
            return found
    tail = screen_text(seen)[-2000:]
    raise AssertionError(f"{pattern.pattern!r} not rendered within {within} s; screen tail:\n{tail}")


@pytest.mark.parametrize("quit_key", ["q", "\x03"], ids=["q", "ctrl-c"])
def test_watch_renders_live_values_and_quits(live_system: LiveSystem, quit_key: str) -> None:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "32"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "openalgo_proxy", "watch", "NSE:RELIANCE", "NSE_INDEX:NIFTY", "--url", live_system.url],
        dimensions=(32, 140),
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=30,
    )
    try:
        # a live LTP next to its instrument, and the status bar counting ticks while live
        row = read_until(child, re.compile(r"NSE:RELIANCE\s+(\d{3,5}\.\d{2})"), within=30)
        assert 1000 < float(row.group(1)) < 2000  # the simulated RELIANCE trades near 1485
        status = read_until(child, re.compile(r"live\s+ws://\S+\s+mode quote\s+ticks ([1-9][\d,]*)"), within=15)
        assert int(status.group(1).replace(",", "")) > 0
        read_until(child, re.compile(r"Depth NSE:RELIANCE"), within=5)  # the ladder follows the cursor row
        child.send(quit_key)
        child.expect(pexpect.EOF, timeout=15)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)
