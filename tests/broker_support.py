"""What the broker integration tests share: a harness of simulator + adapter, and the broker's
processes (`simulate BROKER`, `run --broker ...`, a feed without credentials) started and awaited
the same way for every broker. Each broker's conftest and tests keep only what is its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from openalgo_proxy.brokers.base import BrokerAdapter, Rejection
from openalgo_proxy.brokers.master import InstrumentMasterError
from openalgo_proxy.model import Instrument, Mode, Tick
from tests.support import client, free_port, running_system

# an adapter under test retries fast and gives up on a dead endpoint quickly
ADAPTER_TEST_KWARGS: dict[str, Any] = {
    "backoff_base": 0.05,
    "backoff_cap": 0.2,
    "backoff_long": 0.2,
    "open_timeout": 2.0,
}


async def until(condition: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    """Poll `condition` every 10 ms until true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


class Simulator(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SimulatorT = TypeVar("SimulatorT", bound=Simulator)
AdapterT = TypeVar("AdapterT", bound=BrokerAdapter)


@dataclass
class Harness(Generic[SimulatorT, AdapterT]):
    """A started simulator and an adapter pointed at it, with what the adapter delivered."""

    sim: SimulatorT
    adapter: AdapterT
    ticks: list[Tick] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        found = self.adapter.lookup(exchange, symbol)
        assert found is not None, (exchange, symbol)
        return found

    def ticks_for(self, symbol: str) -> list[Tick]:
        return [t for t in self.ticks if t.symbol == symbol]


HarnessT = TypeVar("HarnessT", bound=Harness[Any, Any])


@contextlib.asynccontextmanager
async def harnesses(
    new_simulator: Callable[..., SimulatorT],
    new_harness: Callable[[SimulatorT, dict[str, Any], Any, dict[str, Any]], HarnessT],
) -> AsyncIterator[Callable[..., Awaitable[HarnessT]]]:
    """Yields `make(sim_kwargs, options={...FeedOptions...}, credentials=..., **adapter kwargs)`, which
    starts a simulator (`new_simulator(**sim_kwargs)`) and the adapter that `new_harness(simulator,
    options, credentials or None, adapter kwargs)` builds, with ADAPTER_TEST_KWARGS unless overridden;
    everything made is stopped at the end."""
    made: list[HarnessT] = []

    async def make(sim_kwargs: dict[str, Any] | None = None, **adapter_kwargs: Any) -> HarnessT:
        sim = new_simulator(**(sim_kwargs or {}))
        await sim.start()
        options = adapter_kwargs.pop("options", {})
        credentials = adapter_kwargs.pop("credentials", None)
        harness = new_harness(sim, options, credentials, {**ADAPTER_TEST_KWARGS, **adapter_kwargs})
        made.append(harness)
        await harness.adapter.start(harness.ticks.append, harness.rejections.append)
        return harness

    yield make
    for harness in made:
        await harness.adapter.stop()
        await harness.sim.stop()


@contextlib.asynccontextmanager
async def depth_through_proxy(adapter: BrokerAdapter) -> AsyncIterator[tuple[dict[str, Any], dict[str, Any]]]:
    """A feed on `adapter` and a proxy in this loop; a client subscribes NSE:SBIN in Depth mode and gets
    the first two market data messages, yielded while the system still runs."""
    async with asyncio.timeout(20), running_system(adapter=adapter) as system, client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "Depth"})
        assert reply["status"] == "success"
        first = await c.market_data(within=10)
        second = await c.market_data(within=10)
        yield first, second


async def stream_from_simulator_process(proc: subprocess.Popen[bytes], adapter: BrokerAdapter) -> list[object]:
    """Start `adapter` against the `simulate BROKER` process `proc` (retrying the instrument master
    download while the process binds), want NSE_INDEX:NIFTY as a quote, and return once two ticks came."""
    ticks: list[object] = []
    async with asyncio.timeout(20):
        started = False
        while not started:
            try:
                await adapter.start(ticks.append, ticks.append)
                started = True
            except InstrumentMasterError:  # connection refused until the process listens
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                await asyncio.sleep(0.1)
        nifty = adapter.lookup("NSE_INDEX", "NIFTY")
        assert nifty is not None
        await adapter.set_wanted({nifty: Mode.QUOTE})
        await until(lambda: len(ticks) >= 2, within=10, what="ticks from the simulator process")
    await adapter.stop()
    return ticks


@contextlib.asynccontextmanager
async def run_process(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[int]:
    """`openalgo-proxy run ARGS` on a free port and a private TCP bus as a real process; yields the
    port once the process says it is ready; on the way out SIGTERM, and it must exit 0."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", *args, "--port", str(port),
        "--bus", f"tcp://127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"ready: ws://" in line, line
        yield port
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def first_market_data(port: int, subscribe: dict[str, Any]) -> dict[str, Any]:
    """The first market data message a client of the proxy on `port` gets after sending `subscribe`."""
    async with asyncio.timeout(20), client(f"ws://127.0.0.1:{port}") as c:
        await c.send(subscribe)
        return await c.market_data(within=10)


def feed_without_credentials(broker: str, env_prefix: str) -> subprocess.CompletedProcess[bytes]:
    """`openalgo-proxy feed --broker BROKER` with no `ENV_PREFIX*` variables in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(env_prefix)}
    return subprocess.run(
        [sys.executable, "-m", "openalgo_proxy", "feed", "--broker", broker, "--bus", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
