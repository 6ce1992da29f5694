"""Helpers for Angel integration tests: the Harness (simulator + adapter) and condition polling.

The `harness` fixture lives in conftest.py beside this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import Rejection
from openalgo_proxy.model import Instrument, Tick


async def until(condition: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    """Poll `condition` every 10 ms until true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Harness:
    sim: AngelSimulator
    adapter: AngelAdapter
    ticks: list[Tick] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        found = self.adapter.lookup(exchange, symbol)
        assert found is not None, (exchange, symbol)
        return found

    def ticks_for(self, symbol: str) -> list[Tick]:
        return [t for t in self.ticks if t.symbol == symbol]
