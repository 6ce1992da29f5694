"""Broker-agnostic helpers for reliability scenarios: a system whose broker link runs through a
fault proxy, and process resource counters (FDs, tasks, threads, RSS).

A broker is plugged in as a `BrokerUnderTest`: a started simulator's WebSocket endpoint and a
factory that builds the production adapter for a given streaming URL. Angel and Zerodha are
below; another broker adds its own `..._under_test()` and reuses everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import Backoff, BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.market import UNIVERSE
from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter
from openalgo_proxy.brokers.zerodha.codec import KiteMode
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from tests.reliability.faultproxy import FaultProxy
from tests.support import System, running_system


@dataclass(frozen=True)
class Resources:
    fds: int
    tasks: int
    threads: int
    rss: int

    def __str__(self) -> str:
        return f"fds={self.fds} tasks={self.tasks} threads={self.threads} rss={self.rss / 2**20:.1f} MiB"


def resources() -> Resources:
    """This process's open FDs, asyncio tasks (of the running loop), OS threads (ZeroMQ's too) and RSS."""
    proc = psutil.Process(os.getpid())
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:
        tasks = 0
    return Resources(proc.num_fds(), tasks, proc.num_threads(), proc.memory_info().rss)


def via(url: str, fp: FaultProxy) -> str:
    """`url` with its host:port replaced by the fault proxy's."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"127.0.0.1:{fp.port}", parts.path, parts.query, parts.fragment))


BackoffFactory = Callable[[], Backoff]


@dataclass
class BrokerUnderTest:
    """A started simulator and how to build the production adapter against a given streaming URL.

    `upstream()` is what the simulator has subscribed now; `reliance_quote` is its value when the
    only thing wanted is RELIANCE (NSE) in Quote mode; `connections()` counts live upstream sockets.
    """

    name: str
    simulator: Any
    ws_url: str
    make_adapter: Callable[[str, BackoffFactory | None], BrokerAdapter]
    upstream: Callable[[], object]
    reliance_quote: object
    connections: Callable[[], int]


@contextlib.asynccontextmanager
async def angel_under_test(
    sim_kwargs: dict[str, Any] | None = None, **adapter_kwargs: Any
) -> AsyncIterator[BrokerUnderTest]:
    """The Angel simulator and adapter, with short backoff unless overridden."""
    options = adapter_kwargs.pop("options", {})
    kwargs: dict[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.2, "backoff_long": 0.2, "open_timeout": 2.0}
    kwargs.update(adapter_kwargs)
    async with AngelSimulator(**{"seed": 11, **(sim_kwargs or {})}) as sim:

        def make(ws_url: str, backoff: BackoffFactory | None = None) -> BrokerAdapter:
            extra = dict(kwargs)
            if backoff is not None:
                template = backoff()
                extra |= {"backoff_base": template.base, "backoff_cap": template.cap, "rng": template._rng}
            return AngelAdapter(sim.feed_options(ws_url=ws_url, **options), sim.credentials(), **extra)

        yield BrokerUnderTest(
            "angel", sim, sim.ws_url, make, sim.subscribed, {(1, "2885", 2)}, lambda: sim.connection_count
        )


@contextlib.asynccontextmanager
async def zerodha_under_test(
    sim_kwargs: dict[str, Any] | None = None, stall_timeout: float = 2.0
) -> AsyncIterator[BrokerUnderTest]:
    """The Kite simulator (fast heartbeats) and adapter, with short backoff unless given."""
    sim = KiteSimulator(**{"seed": 11, "heartbeat_interval": 0.1, **(sim_kwargs or {})})
    await sim.start()
    try:

        def make(ws_url: str, backoff: BackoffFactory | None = None) -> BrokerAdapter:
            options = FeedOptions(ws_url=ws_url, instruments=sim.instruments_url, stall_timeout=stall_timeout)
            factory = backoff or (lambda: Backoff(base=0.05, cap=0.2, long_delay=0.2))
            return KiteAdapter(options, api_key=sim.api_key, access_token="sim_access_token", backoff=factory)

        reliance = next(lst.kite_token for lst in UNIVERSE if lst.symbol == "RELIANCE" and lst.exchange == "NSE")
        yield BrokerUnderTest(
            "zerodha", sim, sim.url, make, sim.subscribed, {reliance: KiteMode.QUOTE}, lambda: len(sim.connections)
        )
    finally:
        await sim.stop()


def broker_under_test(
    name: str, *, quiet: bool, stall_timeout: float
) -> contextlib.AbstractAsyncContextManager[BrokerUnderTest]:
    """Either broker, with ticks (`quiet=False`) or snapshots and heartbeats only."""
    rate = 0 if quiet else 20
    if name == "angel":
        return angel_under_test({"ticks_per_second": rate}, options={"stall_timeout": stall_timeout})
    return zerodha_under_test({"ticks_per_second": rate}, stall_timeout=stall_timeout)


@dataclass
class FaultySystem:
    system: System
    broker: BrokerUnderTest
    fp: FaultProxy  # between the feed's adapter and the broker simulator

    @property
    def adapter(self) -> BrokerAdapter:
        return self.system.feed.adapter


@contextlib.asynccontextmanager
async def system_behind_faults(
    broker: BrokerUnderTest, backoff: BackoffFactory | None = None, **system_kwargs: Any
) -> AsyncIterator[FaultySystem]:
    """Feed + proxy in this loop; the feed reaches the broker only through a fault proxy."""
    target = urlsplit(broker.ws_url)
    assert target.hostname is not None and target.port is not None
    async with FaultProxy(target.hostname, target.port) as fp:
        adapter = broker.make_adapter(via(broker.ws_url, fp), backoff)
        async with running_system(adapter=adapter, **system_kwargs) as system:
            yield FaultySystem(system, broker, fp)
