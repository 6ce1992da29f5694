"""Shared pieces: a Noren simulator in a member's dialect and a NorenAdapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openalgo_proxy.brokers.base import FeedOptions, Rejection
from openalgo_proxy.brokers.noren.adapter import NorenAdapter
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.simulator import NorenSimulator
from openalgo_proxy.model import Tick

MEMBERS = ("shoonya", "flattrade", "zebu", "tradesmart", "definedge", "aliceblue")


class Collector:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.rejections: list[Rejection] = []
        self.orders: list[dict[str, object]] = []

    def on_tick(self, tick: Tick) -> None:
        self.ticks.append(tick)

    def on_reject(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)

    def on_order(self, event: object) -> None:
        assert isinstance(event, dict)
        self.orders.append(event)

    def symbols(self) -> set[str]:
        return {t.symbol for t in self.ticks}

    def last(self, symbol: str) -> Tick:
        return next(t for t in reversed(self.ticks) if t.symbol == symbol)


def make_adapter(sim: NorenSimulator, credentials: NorenCredentials | None = None, **kwargs: object) -> NorenAdapter:
    options = FeedOptions(ws_url=sim.ws_url, instruments=sim.instruments_url, stall_timeout=3.0)
    return NorenAdapter(
        options,
        sim.member.name,
        credentials or NorenCredentials(sim.user_id, sim.token),
        backoff_base=0.05,
        stable_after=0.2,
        heartbeat_interval=0.3,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(params=MEMBERS)
async def member_sim(request: pytest.FixtureRequest) -> AsyncIterator[NorenSimulator]:
    simulator = NorenSimulator(broker=request.param, ticks_per_second=20.0, seed=3)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
