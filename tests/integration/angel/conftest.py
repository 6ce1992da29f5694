"""Fixtures for the Angel integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.login import AngelCredentials
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from tests.broker_support import Harness, harnesses


def _harness(
    sim: AngelSimulator, options: dict[str, Any], credentials: AngelCredentials | None, kwargs: dict[str, Any]
) -> Harness[AngelSimulator, AngelAdapter]:
    return Harness(sim, AngelAdapter(sim.feed_options(**options), credentials or sim.credentials(), **kwargs))


@pytest.fixture
async def harness() -> AsyncIterator[Any]:
    """`await harness(sim_kwargs, options={...FeedOptions...}, **AngelAdapter kwargs)` -> a started Harness.

    Short backoff for tests; everything made is stopped at teardown.
    """
    async with harnesses(lambda **kwargs: AngelSimulator(seed=11, **kwargs), _harness) as make:
        yield make
