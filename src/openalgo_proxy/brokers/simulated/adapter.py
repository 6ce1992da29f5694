"""A broker adapter backed directly by SimulatedMarket: for demos, tests and benchmarks."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping

from openalgo_proxy.brokers.base import AdapterStatus, BrokerAdapter, ConnectionState, FeedOptions, RejectSink, TickSink
from openalgo_proxy.brokers.index import IndexedAdapter, InstrumentIndex
from openalgo_proxy.brokers.market import SIMULATED, Listing, SimulatedMarket
from openalgo_proxy.model import Instrument, Mode, instrument_kind
from openalgo_proxy.tasks import cancel_and_wait

STEP = 0.05  # seconds between market steps


def instrument_of(lst: Listing) -> Instrument:
    kind = instrument_kind(lst.instrument_type, lst.symbol, lst.exchange)
    return Instrument(lst.symbol, lst.exchange, lst.angel_token, lst.tick_size, lst.lot_size, lst.name, kind)


class SimulatedAdapter(IndexedAdapter[tuple[str, str]]):
    name = "simulator"

    def __init__(self, options: FeedOptions) -> None:
        self.options = options
        self.market = SimulatedMarket(SIMULATED, seed=options.seed)
        self.index: InstrumentIndex[tuple[str, str]] = InstrumentIndex()
        for lst in self.market.listings:
            self.index.add(instrument_of(lst), (lst.exchange, lst.symbol))
        if options.exchanges:
            self.index.restrict(options.exchanges)
        self._wanted: dict[Instrument, Mode] = {}
        self._credit: dict[Instrument, float] = {}
        self._rng = random.Random(options.seed)
        self._on_tick: TickSink = lambda tick: None  # until start()
        self._task: asyncio.Task[None] | None = None
        self._status = AdapterStatus()

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        self._on_tick = on_tick
        self._status.state, self._status.connections = ConnectionState.CONNECTED, 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name="simulated-market")

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        added = [inst for inst in wanted if inst not in self._wanted]
        self._wanted = dict(wanted)
        self._credit = {inst: self._credit.get(inst, self._rng.random()) for inst in wanted}
        self._status.subscriptions = len(self._wanted)
        for inst in added:  # a broker sends the current state right after a subscribe
            self._on_tick(self.market.snapshot(inst.exchange, inst.symbol))

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
                    self._on_tick(self.market.advance(inst.exchange, inst.symbol, now))
                self._credit[inst] = credit

    def status(self) -> AdapterStatus:
        return self._status

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._status.state = ConnectionState.CLOSED


def create(options: FeedOptions) -> BrokerAdapter:
    return SimulatedAdapter(options)
