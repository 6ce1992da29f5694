"""Fixtures for the Upstox integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from openalgo_proxy.brokers.base import FeedOptions, Rejection
from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.simulator import UpstoxSimulator
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
    sim: UpstoxSimulator
    adapter: UpstoxAdapter
    ticks: list[Tick] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        found = self.adapter.lookup(exchange, symbol)
        assert found is not None, (exchange, symbol)
        return found

    def ticks_for(self, symbol: str, depth: int = 5) -> list[Tick]:
        return [t for t in self.ticks if t.symbol == symbol and t.depth == depth]


def sim_options(sim: UpstoxSimulator, **overrides: Any) -> FeedOptions:
    values: dict[str, Any] = {"ws_url": sim.feed_url, "instruments": sim.instruments_url}
    values.update(overrides)
    return FeedOptions(**values)


@pytest.fixture
async def harness() -> AsyncIterator[Any]:
    """`await harness(sim_kwargs, options={...FeedOptions...}, credentials=..., **UpstoxAdapter kwargs)`."""
    made: list[Harness] = []

    async def make(sim_kwargs: dict[str, Any] | None = None, **adapter_kwargs: Any) -> Harness:
        sim = UpstoxSimulator(seed=11, **(sim_kwargs or {}))
        await sim.start()
        options = adapter_kwargs.pop("options", {})
        credentials = adapter_kwargs.pop("credentials", None) or UpstoxCredentials(sim.access_token, full_d30=True)
        kwargs: dict[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.2, "backoff_long": 0.2, "open_timeout": 2.0}
        kwargs.update(adapter_kwargs)
        h = Harness(sim, UpstoxAdapter(sim_options(sim, **options), credentials, **kwargs))
        made.append(h)
        await h.adapter.start(h.ticks.append, h.rejections.append)
        return h

    yield make
    for h in made:
        await h.adapter.stop()
        await h.sim.stop()
