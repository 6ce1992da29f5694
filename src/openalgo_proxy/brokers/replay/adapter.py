"""Replay: ticks recorded in the tick store, published through a feed as if a broker sent them.

The recording of [from, to) is scanned at start for its instruments (the directory). Replay begins
`START_DELAY` seconds after the first subscription (so a client that subscribes to a list gets all
of it from the first tick) and runs once through the range: each instrument's ticks of the richest
mode recorded, in the order recorded, paced by their receive times divided by the speed (speed 0:
as fast as the bus takes them, yielding to the event loop every `CHUNK` ticks), one IST day of the
recording in memory at a time; a pause over `MAX_PAUSE_MS` in the recording is cut to that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from openalgo_proxy.brokers.base import AdapterStatus, BrokerAdapter, ConnectionState, FeedOptions, RejectSink, TickSink
from openalgo_proxy.history import reader
from openalgo_proxy.history.paths import default_store_dir
from openalgo_proxy.history.sessions import DAY_MS, ist_midnight
from openalgo_proxy.history.timerange import parse_range, parse_speed
from openalgo_proxy.model import DepthLevel, Instrument, Mode, Tick
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

START_DELAY = 0.5
CHUNK = 2000
#: a stretch longer than this (recorded time) with no tick at all (market closed, recorder stopped)
#: is cut to this, so a range of several days does not wait through the nights
MAX_PAUSE_MS = 60_000
_PRICES = ("ltp", "open", "high", "low", "close", "avg_trade_price", "upper_circuit", "lower_circuit")
_QUANTITIES = ("volume", "last_trade_quantity", "total_buy_quantity", "total_sell_quantity", "oi")
_NUMBERS = _PRICES + _QUANTITIES


def ticks_of(table: pa.Table) -> list[tuple[int, Tick]]:
    """(receive ms, Tick) per row of a store table, in table order."""
    n = table.num_rows
    if not n:
        return []
    col = {name: table.column(name).to_pylist() for name in ("symbol", "exchange", "mode", "ltt", *_NUMBERS)}
    received = reader.epoch_ms(table.column("received"))
    stamps = reader.epoch_ms(table.column("timestamp").fill_null(0))
    books = table.column("depth").to_pylist()
    out = []
    for i in range(n):
        mode = Mode(col["mode"][i])
        values: dict[str, Any] = {name: float(col[name][i] or 0.0) for name in _PRICES}
        values.update((name, int(col[name][i] or 0)) for name in _QUANTITIES)
        book = books[i]
        bids: tuple[DepthLevel, ...] = ()
        asks: tuple[DepthLevel, ...] = ()
        if book is not None:
            bids = tuple(DepthLevel(lv["price"], lv["quantity"], lv["orders"]) for lv in book["buy"] or ())
            asks = tuple(DepthLevel(lv["price"], lv["quantity"], lv["orders"]) for lv in book["sell"] or ())
        tick = Tick(
            col["symbol"][i],
            col["exchange"][i],
            mode,
            values.pop("ltp"),
            ltt=int(col["ltt"][i] or 0),
            exchange_time=stamps[i],
            bids=bids,
            asks=asks,
            **values,
        )
        out.append((received[i], tick))
    return out


class ReplayAdapter(BrokerAdapter):
    name = "replay"

    def __init__(self, options: FeedOptions) -> None:
        self.root = options.store_dir or default_store_dir()
        self.start_ms, self.end_ms = parse_range(options.replay_from, options.replay_to, int(time.time() * 1000))
        self.speed = parse_speed(options.replay_speed)
        served = set(options.exchanges)
        self._served = served
        self._instruments: dict[tuple[str, str], Instrument] = {}
        self._richest: dict[tuple[str, str], int] = {}
        self._wanted: dict[Instrument, Mode] = {}
        self._on_tick: TickSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._status = AdapterStatus()
        self.published = 0
        self.finished = asyncio.Event()

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        self._on_tick = on_tick
        query = reader.TickQuery(self.start_ms, self.end_ms)
        found = await asyncio.to_thread(reader.instruments, self.root, query)
        for exchange, symbol, mode in found:
            if mode > int(Mode.DEPTH) or (self._served and exchange not in self._served):
                continue  # deeper books are not replayed
            key = (exchange, symbol)
            self._instruments[key] = Instrument(symbol, exchange, token=f"{exchange}:{symbol}")
            self._richest[key] = max(self._richest.get(key, 0), mode)
        if not self._instruments:
            log.warning("replay: no recorded ticks in %s between %d and %d ms", self.root, self.start_ms, self.end_ms)
        self._status.state = ConnectionState.CONNECTED
        self._status.connections = 1

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
        self._wanted = dict(wanted)
        self._status.subscriptions = len(wanted)
        if wanted and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._replay(), name="replay")

    async def _replay(self) -> None:
        await asyncio.sleep(START_DELAY)
        log.info("replay from %d to %d ms at speed %s", self.start_ms, self.end_ms, self.speed or "max")
        clock_origin = 0.0  # wall time (monotonic) of recorded time `recorded_origin`
        recorded_origin: int | None = None
        previous = 0
        wanted_keys = {(inst.exchange, inst.symbol) for inst in self._wanted}
        day = self.start_ms
        while day < self.end_ms:
            next_day = min(ist_midnight(day) + DAY_MS, self.end_ms)
            ticks = await asyncio.to_thread(self._load, day, next_day)  # one IST day in memory at a time
            day = next_day
            for index, (received, tick) in enumerate(ticks):
                if recorded_origin is None:
                    recorded_origin = previous = received
                    clock_origin = time.monotonic()
                if received - previous > MAX_PAUSE_MS:
                    recorded_origin += received - previous - MAX_PAUSE_MS
                previous = received
                if self.speed:
                    delay = clock_origin + (received - recorded_origin) / 1000 / self.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        wanted_keys = {(inst.exchange, inst.symbol) for inst in self._wanted}
                elif index % CHUNK == 0 and index:
                    await asyncio.sleep(0)
                    wanted_keys = {(inst.exchange, inst.symbol) for inst in self._wanted}
                if (tick.exchange, tick.symbol) in wanted_keys and self._on_tick is not None:
                    self._on_tick(tick)
                    self.published += 1
        log.info("replay finished: %d ticks published", self.published)
        self.finished.set()

    def _load(self, start: int, end: int) -> list[tuple[int, Tick]]:
        """The replayed ticks of [start, end), in receive order (the richest mode of each instrument only)."""
        table = reader.read_ticks(self.root, reader.TickQuery(start, end))
        ticks = []
        for received, tick in ticks_of(table):
            if self._richest.get((tick.exchange, tick.symbol)) == int(tick.mode):
                ticks.append((received, tick))
        return ticks

    def status(self) -> AdapterStatus:
        return self._status

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._status.state = ConnectionState.CLOSED


def create(options: FeedOptions) -> BrokerAdapter:
    return ReplayAdapter(options)
