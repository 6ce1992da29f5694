"""The adapter contract, run against every registered broker's production adapter and its simulator.

A broker gets this whole suite by registering (brokers/registry.py) with a simulator whose entry
provides `simulator_for(options)` and `adapter_for(simulator, options)`, on the simulator kit. What
differs between brokers is read from the spec: `max_connections`, the connections one account may open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from openalgo_proxy.brokers import registry
from openalgo_proxy.brokers.base import BrokerAdapter, ConnectionState, FeedOptions, Rejection
from openalgo_proxy.brokers.spec import BrokerSpec
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Instrument, Mode, Tick

STALL = 0.6
EQUITIES = ("RELIANCE", "SBIN", "INFY", "TCS", "HDFCBANK", "ICICIBANK", "ITC", "LT", "WIPRO", "NTPC", "ONGC")


@dataclass
class Rig:
    sim: Any
    adapter: BrokerAdapter
    ticks: list[Tick] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def instrument(self, symbol: str, exchange: str = "NSE") -> Instrument:
        found = self.adapter.lookup(exchange, symbol)
        assert found is not None, (exchange, symbol)
        return found

    def wanted(self, *symbols: str) -> dict[Instrument, Mode]:
        return {self.instrument(s): Mode.QUOTE for s in symbols}

    def reconnects(self) -> int:
        return self.adapter.status().reconnects


async def until(condition: Callable[[], bool], what: str, within: float = 8.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(params=registry.simulated(), ids=lambda spec: spec.name)
def broker(request: pytest.FixtureRequest) -> BrokerSpec:
    spec: BrokerSpec = request.param
    return spec


@pytest.fixture
def make_rig(broker: BrokerSpec) -> Callable[..., Any]:
    module = broker.simulator_module()
    stack: list[Rig] = []

    @asynccontextmanager_
    async def make(**options: Any) -> AsyncIterator[Rig]:
        base = {"stall_timeout": STALL, "backoff_base": 0.02, "backoff_cap": 0.1, "ticks_per_second": 20.0, "seed": 5}
        feed_options = FeedOptions(**{**base, **options})
        sim = module.simulator_for(feed_options)
        await sim.start()
        try:
            rig = Rig(sim, module.adapter_for(sim, feed_options))
            await rig.adapter.start(rig.ticks.append, rig.rejections.append)
            stack.append(rig)
            try:
                yield rig
            finally:
                await rig.adapter.stop()
        finally:
            await sim.stop()

    return make


def asynccontextmanager_(func: Any) -> Any:
    from contextlib import asynccontextmanager

    return asynccontextmanager(func)


async def test_exact_resubscribe_after_a_reconnect(make_rig: Any) -> None:
    async with make_rig() as rig:
        await rig.adapter.set_wanted(rig.wanted("RELIANCE", "SBIN", "INFY"))
        await until(
            lambda: rig.sim.subscribed_instruments() == {("NSE", s) for s in ("RELIANCE", "SBIN", "INFY")}, "sub"
        )
        await rig.adapter.set_wanted(rig.wanted("RELIANCE", "INFY"))  # a diff before the drop
        wanted = {("NSE", "RELIANCE"), ("NSE", "INFY")}
        await until(lambda: rig.sim.subscribed_instruments() == wanted, "diff applied")
        assert rig.sim.drop_connections() >= 1
        await until(lambda: rig.reconnects() >= 1, "reconnect")
        await until(lambda: rig.sim.subscribed_instruments() == wanted, "exact resubscribe")
        before = len(rig.ticks)
        await until(lambda: len(rig.ticks) > before + 2, "fresh ticks")
        assert {t.symbol for t in rig.ticks[before:]} <= {"RELIANCE", "INFY"}


async def test_stall_forces_a_reconnect(make_rig: Any) -> None:
    async with make_rig() as rig:
        await rig.adapter.set_wanted(rig.wanted("TCS"))
        await until(lambda: len(rig.ticks) > 0, "ticks")
        before = rig.sim.connections_total
        rig.sim.mute = True
        # a new connection while the server stays silent (a first-frame login is not acknowledged yet)
        await until(lambda: rig.sim.connections_total > before, "watchdog-forced reconnect")
        rig.sim.mute = False
        count = len(rig.ticks)
        await until(
            lambda: (
                rig.reconnects() >= 1
                and len(rig.ticks) > count
                and rig.adapter.status().state is ConnectionState.CONNECTED
            ),
            "back",
        )


async def test_heartbeats_count_as_liveness(make_rig: Any) -> None:
    async with make_rig() as rig:
        await rig.adapter.set_wanted(rig.wanted("TCS"))
        await until(lambda: len(rig.ticks) > 0 and rig.adapter.status().state is ConnectionState.CONNECTED, "ticks")
        rig.sim.heartbeats_only = True
        await asyncio.sleep(0)
        ticks = len(rig.ticks)
        await asyncio.sleep(4 * STALL)  # four stall timeouts with no tick, only heartbeats
        assert rig.reconnects() == 0 and rig.adapter.status().state is ConnectionState.CONNECTED
        assert len(rig.ticks) <= ticks + 1  # at most one tick was already in flight


async def test_refused_credentials_are_refreshed(make_rig: Any) -> None:
    async with make_rig() as rig:
        await rig.adapter.set_wanted(rig.wanted("SBIN"))
        await until(lambda: len(rig.ticks) > 0, "ticks")
        rig.sim.expire_credentials()  # the old credential is refused from now on (HTTP 401/403, or Dhan's 807)
        rig.sim.drop_connections()
        # back in only with the credential issued after the expiry: the adapter refreshed
        await until(lambda: rig.reconnects() >= 1 and rig.adapter.status().state is ConnectionState.CONNECTED, "in")
        await until(lambda: rig.sim.subscribed_instruments() == {("NSE", "SBIN")}, "resubscribed")


async def test_persistent_auth_failure_backs_off(make_rig: Any) -> None:
    async with make_rig(backoff_base=0.05, backoff_cap=0.3) as rig:
        await rig.adapter.set_wanted(rig.wanted("SBIN"))
        await until(lambda: rig.adapter.status().state is ConnectionState.CONNECTED, "connected")
        rig.sim.reject_handshakes = True  # refused at the handshake (401/403) or right after (Dhan's 809)
        before = rig.sim.handshake_attempts
        rig.sim.drop_connections()
        await until(lambda: rig.sim.handshake_attempts >= before + 3, "repeated refused attempts")
        seen = rig.sim.handshake_attempts
        await asyncio.sleep(1.0)
        # full jitter up to 0.3 s: a few attempts a second, never a hot loop
        assert rig.sim.handshake_attempts - seen <= 30
        assert not rig.sim.subscribed_instruments()
        rig.sim.reject_handshakes = False
        await until(lambda: rig.adapter.status().state is ConnectionState.CONNECTED, "recovered")


async def test_past_the_cap_is_limit_exceeded(make_rig: Any) -> None:
    async with make_rig(max_connections=1, max_per_connection=2) as rig:
        await rig.adapter.set_wanted(rig.wanted("RELIANCE", "SBIN", "INFY"))
        await until(lambda: len(rig.rejections) == 1, "one rejection")
        assert rig.rejections[0].code is ErrorCode.LIMIT_EXCEEDED
        await until(lambda: len(rig.sim.subscribed_instruments()) == 2, "two placed")
        await rig.adapter.set_wanted(rig.wanted("RELIANCE", "SBIN", "INFY"))
        assert len(rig.rejections) == 1  # the same state again rejects nothing new


async def test_pool_fills_and_drains(make_rig: Any, broker: BrokerSpec) -> None:
    """Up to the broker's own connection cap, two instruments each; one more is LIMIT_EXCEEDED;
    connections close as their instruments go, back to what the broker keeps open when idle."""
    cap = broker.max_connections
    assert 0 < 2 * cap < len(EQUITIES), "the fixture table has too few equities for this broker's cap"
    async with make_rig(max_connections=cap, max_per_connection=2) as rig:
        await until(lambda: rig.adapter.status().state is ConnectionState.CONNECTED, "started")
        idle = rig.sim.connection_count  # brokers that keep one connection open to prove credentials
        placed = EQUITIES[: 2 * cap]
        await rig.adapter.set_wanted(rig.wanted(*placed, EQUITIES[2 * cap]))
        subscribed = {("NSE", s) for s in placed}
        await until(lambda: rig.sim.connection_count == cap and rig.sim.subscribed_instruments() == subscribed, "full")
        await until(lambda: len(rig.rejections) == 1, "the one past the cap rejected")
        assert rig.rejections[0].code is ErrorCode.LIMIT_EXCEEDED
        assert rig.rejections[0].instrument.symbol == EQUITIES[2 * cap]
        await rig.adapter.set_wanted(rig.wanted(EQUITIES[0]))
        drained = {("NSE", EQUITIES[0])}
        await until(lambda: rig.sim.connection_count == 1 and rig.sim.subscribed_instruments() == drained, "one")
        await rig.adapter.set_wanted({})
        await until(lambda: rig.sim.connection_count == idle and not rig.sim.subscribed_instruments(), "empty")


async def test_malformed_input_is_counted_and_survived(make_rig: Any) -> None:
    async with make_rig() as rig:
        await rig.adapter.set_wanted(rig.wanted("INFY"))
        await until(lambda: len(rig.ticks) > 0, "ticks")
        await rig.sim.send_malformed()
        await until(lambda: rig.adapter.status().decode_errors >= 1, "decode error counted")
        count = len(rig.ticks)
        await until(lambda: len(rig.ticks) > count + 2, "ticks after the malformed frame")
        assert rig.reconnects() == 0


async def test_credentials_never_logged(make_rig: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_rig() as rig:
        await rig.adapter.set_wanted(rig.wanted("SBIN"))
        await until(lambda: len(rig.ticks) > 0, "ticks")
        secrets = list(rig.sim.secrets())
        rig.sim.expire_credentials()
        rig.sim.drop_connections()
        await until(lambda: rig.reconnects() >= 1 and rig.adapter.status().state is ConnectionState.CONNECTED, "in")
        secrets += rig.sim.secrets()
    assert secrets
    # the client side's records (the simulator is the broker: its own request logs are not ours)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("aiohttp", "websockets.server")))
    leaked = [s for s in secrets if s and s in text]
    assert not leaked
