"""Fixtures for the Upstox integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.simulator import UpstoxSimulator
from openalgo_proxy.model import Tick
from tests.broker_support import Harness, harnesses, until

__all__ = ["UpstoxHarness", "sim_options", "until"]


class UpstoxHarness(Harness[UpstoxSimulator, UpstoxAdapter]):
    def ticks_for(self, symbol: str, depth: int = 5) -> list[Tick]:
        return [t for t in self.ticks if t.symbol == symbol and t.depth == depth]


def sim_options(sim: UpstoxSimulator, **overrides: Any) -> FeedOptions:
    values: dict[str, Any] = {"ws_url": sim.feed_url, "instruments": sim.instruments_url}
    values.update(overrides)
    return FeedOptions(**values)


def _harness(
    sim: UpstoxSimulator, options: dict[str, Any], credentials: UpstoxCredentials | None, kwargs: dict[str, Any]
) -> UpstoxHarness:
    credentials = credentials or UpstoxCredentials(sim.access_token, full_d30=True)
    return UpstoxHarness(sim, UpstoxAdapter(sim_options(sim, **options), credentials, **kwargs))


@pytest.fixture
async def harness() -> AsyncIterator[Any]:
    """`await harness(sim_kwargs, options={...FeedOptions...}, credentials=..., **UpstoxAdapter kwargs)`."""
    async with harnesses(lambda **kwargs: UpstoxSimulator(seed=11, **kwargs), _harness) as make:
        yield make
