"""A broker adapter backed directly by SimulatedMarket: for demos, tests and benchmarks."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Mapping

from openalgo_proxy.brokers.base import (
    AdapterStatus,
    BrokerAdapter,
    ConnectionState,
    FeedOptions,
    RejectSink,
    TickSink,
)
from openalgo_proxy.brokers.market import SIMULATED, Listing, SimulatedMarket
from openalgo_proxy.model import Instrument, Mode, Tick, instrument_kind
from openalgo_proxy.tasks import cancel_and_wait

STEP = 0.05  # seconds between market steps


def instrument_of(listing: Listing) -> Instrument:
    return Instrument(
        symbol=listing.symbol,
        exchange=listing.exchange,
        token=listing.angel_token,
        tick_size=listing.tick_size,
        lot_size=listing.lot_size,
        name=listing.name,
        instrument_type=instrument_kind(listing.instrument_type, listing.symbol, listing.exchange),
    )


class SimulatedAdapter(BrokerAdapter):
    name = "simulator"

    def __init__(self, options: FeedOptions) -> None:
        self.options = options
        self.market = SimulatedMarket(SIMULATED, seed=options.seed)
        served = set(options.exchanges)
        self._instruments = {
            (lst.exchange, lst.symbol): instrument_of(lst)
            for lst in self.market.listings
            if not served or lst.exchange in served
        }
        self._wanted: dict[Instrument, Mode] = {}
        self._credit: dict[Instrument, float] = {}
        self._rng = random.Random(options.seed)
        self._on_tick: TickSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._status = AdapterStatus()

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        self._on_tick = on_tick
        self._status.state = ConnectionState.CONNECTED
        self._status.connections = 1
        self._status.last_message_monotonic = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="simulated-market")

    def exchanges(self) -> tuple[str, ...]:
        return tuple(sorted({exchange for exchange, _ in self._instruments}))

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self._instruments.get((exchange, symbol))

    def directory(self) -> Mapping[str, Iterable[str]]:
        result: dict[str, list[str]] = {}
        for exchange, symbol in self._instruments:
            result.setdefault(exchange, []).append(symbol)
        return result

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        added = [inst for inst in wanted if inst not in self._wanted]
        self._wanted = dict(wanted)
        self._credit = {inst: self._credit.get(inst, self._rng.random()) for inst in wanted}
        self._status.subscriptions = len(self._wanted)
        for inst in added:  # a broker sends the current state right after a subscribe
            self._emit(self.market.snapshot(inst.exchange, inst.symbol))

    def _emit(self, tick: Tick) -> None:
        self._status.last_message_monotonic = time.monotonic()
        if self._on_tick is not None:
            self._on_tick(tick)

    async def _run(self) -> None:
        rate = self.options.ticks_per_second * STEP
        rng = self._rng
        while True:
            await asyncio.sleep(STEP)
            now = int(time.time() * 1000)
            for inst in list(self._wanted):
                credit = self._credit.get(inst, 0.0) + rate * (0.5 + rng.random())
                while credit >= 1.0:
                    credit -= 1.0
                    self._emit(self.market.advance(inst.exchange, inst.symbol, now))
                self._credit[inst] = credit

    def status(self) -> AdapterStatus:
        return self._status

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._status.state = ConnectionState.CLOSED


def create(options: FeedOptions) -> BrokerAdapter:
    return SimulatedAdapter(options)
