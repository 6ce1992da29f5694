"""Shared fixtures: a real Kite simulator on a free loopback port and a KiteAdapter pointed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from openalgo_proxy.brokers.base import Backoff, FeedOptions, Rejection
from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter, TokenProvider
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from openalgo_proxy.model import Tick


async def wait_for(condition: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    """Poll `condition` until true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def sim() -> AsyncIterator[KiteSimulator]:
    simulator = KiteSimulator(ticks_per_second=20.0, heartbeat_interval=0.1, seed=7)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


class Collector:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.rejections: list[Rejection] = []

    def on_tick(self, tick: Tick) -> None:
        self.ticks.append(tick)

    def on_reject(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)

    def symbols(self) -> set[str]:
        return {t.symbol for t in self.ticks}

    def last(self, symbol: str) -> Tick:
        return next(t for t in reversed(self.ticks) if t.symbol == symbol)


def fast_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.4, long_delay=0.6)


def make_adapter(
    sim: KiteSimulator,
    token: str | TokenProvider | None = None,
    stall_timeout: float = 2.0,
    **kwargs: object,
) -> KiteAdapter:
    options = FeedOptions(ws_url=sim.url, instruments=sim.instruments_url, stall_timeout=stall_timeout)
    return KiteAdapter(
        options,
        api_key=sim.api_key,
        access_token=token if token is not None else "sim_access_token",
        backoff=fast_backoff,
        **kwargs,  # type: ignore[arg-type]
    )
