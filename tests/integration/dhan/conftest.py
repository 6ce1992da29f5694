"""Fixtures for the Dhan integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.dhan.adapter import DhanAdapter
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator
from tests.broker_support import Harness, harnesses, until

__all__ = ["sim_options", "until"]


def sim_options(sim: DhanSimulator, **overrides: Any) -> FeedOptions:
    values: dict[str, Any] = {"ws_url": sim.ws_url, "instruments": sim.instruments_url}
    values.update(overrides)
    return FeedOptions(**values)


def _harness(
    sim: DhanSimulator, options: dict[str, Any], credentials: DhanCredentials | None, kwargs: dict[str, Any]
) -> Harness[DhanSimulator, DhanAdapter]:
    credentials = credentials or DhanCredentials(sim.client_id, sim.access_token)
    return Harness(sim, DhanAdapter(sim_options(sim, **options), credentials, **kwargs))


@pytest.fixture
async def harness() -> AsyncIterator[Any]:
    """`await harness(sim_kwargs, options={...FeedOptions...}, credentials=..., **DhanAdapter kwargs)`."""
    async with harnesses(lambda **kwargs: DhanSimulator(seed=11, **kwargs), _harness) as make:
        yield make
