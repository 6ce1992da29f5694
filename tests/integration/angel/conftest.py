"""Fixtures for the Angel integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from tests.integration.angel.angel_harness import Harness


@pytest.fixture
async def harness() -> AsyncIterator[Any]:
    """`await harness(sim_kwargs, options={...FeedOptions...}, **AngelAdapter kwargs)` -> a started Harness.

    Short backoff for tests; everything made is stopped at teardown.
    """
    made: list[Harness] = []

    async def make(sim_kwargs: dict[str, Any] | None = None, **adapter_kwargs: Any) -> Harness:
        sim = AngelSimulator(seed=11, **(sim_kwargs or {}))
        await sim.start()
        options = adapter_kwargs.pop("options", {})
        kwargs: dict[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.2, "backoff_long": 0.2, "open_timeout": 2.0}
        kwargs.update(adapter_kwargs)
        h = Harness(sim, AngelAdapter(sim.feed_options(**options), sim.credentials(), **kwargs))
        made.append(h)
        await h.adapter.start(h.ticks.append, h.rejections.append)
        return h

    yield make
    for h in made:
        await h.adapter.stop()
        await h.sim.stop()
