"""The recorder: a bus participant that writes every tick of its universe to the tick store.

Universe (``[record]``): listed ``symbols`` (``EXCHANGE:SYMBOL``) in one mode, whole ``exchanges``
(every symbol their feeds list on ``#instruments|``, in that mode), and/or ``subscribed``: a passive
tap on the empty prefix that records whatever any client has asked the feeds for, in the modes
asked, without asking the broker for anything more.

The event loop only appends raw frames to per-partition batches (a few list appends per tick); a
writer thread parses and writes them (store.py). Batches are handed over every `flush_interval`
seconds or at `batch_rows` rows, so a kill -9 loses at most that much. On start the recorder
removes a killed predecessor's temporary files, and reports the gap since the newest recorded tick
(log line and one JSON line in ``ROOT/_gaps.jsonl``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from openalgo_proxy import control, topics
from openalgo_proxy.bus import SNAPSHOT, Subscriber
from openalgo_proxy.errors import ControlMessageError
from openalgo_proxy.history.schema import ist_date
from openalgo_proxy.history.sessions import DAY_MS, ist_midnight
from openalgo_proxy.history.store import Batch, TickStore, apply_retention, disk_usage, latest_received
from openalgo_proxy.model import Mode
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

GAPS_FILE = "_gaps.jsonl"


@dataclass(frozen=True, slots=True)
class Universe:
    symbols: tuple[tuple[str, str], ...] = ()  # (exchange, symbol)
    exchanges: tuple[str, ...] = ()
    subscribed: bool = False
    mode: Mode = Mode.QUOTE

    @property
    def empty(self) -> bool:
        return not self.symbols and not self.exchanges and not self.subscribed


@dataclass(slots=True)
class _Slot:
    """A data topic as the recorder files it."""

    exchange: str
    mode: int
    last_seq: int = 0


@dataclass(slots=True)
class RecorderStats:
    ticks: int = 0
    duplicates: int = 0
    files: int = 0
    rows_written: int = 0
    write_errors: int = 0
    pending: int = 0
    store_bytes: int = 0
    gaps: list[dict[str, object]] = field(default_factory=list)


class Recorder:
    def __init__(
        self,
        root: str | Path,
        endpoints: Iterable[str],
        universe: Universe,
        *,
        flush_interval: float = 5.0,
        batch_rows: int = 100_000,
        retention_days: int = 0,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = TickStore(root)
        self.root = self.store.root
        self.endpoints = list(endpoints)
        self.universe = universe
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.retention_days = retention_days
        self._ctx = ctx or zmq.Context.instance()
        self._clock = clock
        self.stats = RecorderStats()
        self._slots: dict[bytes, _Slot | None] = {}
        self._batches: dict[tuple[str, int], Batch] = {}
        self._pending = 0
        self._date = ""
        self._day_end = 0
        self._subscribed: set[bytes] = set()
        self._queue: queue.Queue[list[Batch] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._subscriber: Subscriber | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._handed = 0  # hand-overs to the writer thread, and how many of them it has written
        self._written = 0
        self._written_changed = threading.Condition()
        self._base_bytes = 0

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        removed = self.store.remove_leftovers()
        if removed:
            log.warning("recorder: removed %d unfinished file(s) of a stopped recorder", removed)
        self._report_gap()
        self._writer = threading.Thread(target=self._write_loop, name="tick-writer", daemon=True)
        self._writer.start()
        self._subscriber = Subscriber(self._ctx, self.endpoints, self._on_message, self._on_batch_end)
        uni = self.universe
        if uni.subscribed:
            self._subscribe(b"")
        else:
            for exchange, symbol in uni.symbols:
                self._subscribe(topics.bus_topic(exchange, symbol, uni.mode))
            if uni.exchanges:
                self._subscribe(topics.INSTRUMENTS_PREFIX)
        loop = asyncio.get_running_loop()
        self._subscriber.attach(loop)
        self._tasks = [loop.create_task(self._flush_every(), name="recorder-flush")]
        log.info("recorder writing to %s from %s", self.root, ", ".join(self.endpoints))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
        self.flush()
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        log.info("recorder stopped: %d ticks in %d files", self.stats.rows_written, self.stats.files)

    def _subscribe(self, topic: bytes) -> None:
        if topic not in self._subscribed and self._subscriber is not None:
            self._subscribed.add(topic)
            self._subscriber.subscribe(topic)

    # -- gap report -------------------------------------------------------------------------------
    def _report_gap(self) -> None:
        last = latest_received(self.root)
        if last is None:
            return
        now = int(self._clock() * 1000)
        gap: dict[str, object] = {"from": last, "to": now, "seconds": round((now - last) / 1000, 3)}
        self.stats.gaps.append(gap)
        with open(self.root / GAPS_FILE, "a", encoding="utf-8") as out:
            out.write(json.dumps(gap) + "\n")
        log.warning(
            "recorder started: nothing recorded for %.1f s (newest recorded tick received %s ms, now %s ms)",
            gap["seconds"],
            last,
            now,
        )

    # -- bus side (event loop) --------------------------------------------------------------------
    def _on_message(self, parts: list[bytes]) -> None:
        topic = parts[0]
        try:
            slot = self._slots[topic]
        except KeyError:
            slot = self._slot(topic)
        if slot is None:
            if topic.startswith(topics.INSTRUMENTS_PREFIX) and len(parts) >= 3:
                self._on_directory(parts[2])
            return
        if len(parts) != 3 and (len(parts) != 4 or parts[3] != SNAPSHOT):
            return
        seq = int.from_bytes(parts[1], "big")
        if seq <= slot.last_seq:  # a snapshot replayed to another subscriber, already recorded
            self.stats.duplicates += 1
            return
        slot.last_seq = seq
        received = int(self._clock() * 1000)
        if received >= self._day_end:
            self._new_day(received)
        key = (slot.exchange, slot.mode)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = Batch(self._date, slot.exchange, slot.mode)
        batch.data.append(parts[2])
        batch.seqs.append(seq)
        batch.received.append(received)
        self._pending += 1

    def _slot(self, topic: bytes) -> _Slot | None:
        slot: _Slot | None
        if topics.is_control(topic):
            slot = None
        else:
            try:
                key = topics.parse_bus_topic(topic)
                slot = _Slot(key.exchange, int(key.mode) if key.depth == topics.STANDARD_DEPTH else key.depth)
            except ValueError:
                slot = None
        self._slots[topic] = slot
        return slot

    def _on_directory(self, data: bytes) -> None:
        try:
            directory = control.decode_directory(data)
        except ControlMessageError as exc:
            log.warning("recorder: bad instrument directory: %s", exc)
            return
        for exchange in self.universe.exchanges:
            for symbol in directory.symbols.get(exchange, ()):
                self._subscribe(topics.bus_topic(exchange, symbol, self.universe.mode))

    def _new_day(self, received: int) -> None:
        self.flush()
        self._date = ist_date(received)
        self._day_end = ist_midnight(received) + DAY_MS

    def _on_batch_end(self) -> None:
        if self._pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Hand the open batches to the writer thread."""
        if not self._pending:
            return
        batches = list(self._batches.values())
        self.stats.ticks += self._pending
        self._batches = {}
        self._pending = 0
        self._handed += 1
        self._queue.put(batches)

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()

    async def drained(self) -> None:
        """Wait until everything handed over so far is on disk (tests, a clean stop)."""
        self.flush()
        target = self._handed

        def wait() -> None:
            with self._written_changed:
                self._written_changed.wait_for(lambda: self._written >= target)

        await asyncio.to_thread(wait)

    # -- writer thread ---------------------------------------------------------------------------
    def _write_loop(self) -> None:
        retention_date = ""
        while True:
            batches = self._queue.get()
            if batches is None:
                return
            for batch in batches:
                try:
                    self.store.write(batch)
                except (OSError, ValueError) as exc:  # pyarrow's errors are OSError/ValueError subclasses
                    self.stats.write_errors += 1
                    log.error("recorder: could not write %d ticks of %s: %s", len(batch), batch.exchange, exc)
            today = ist_date(int(self._clock() * 1000))
            if today != retention_date:
                retention_date = today
                apply_retention(self.root, self.retention_days, today)
                self._base_bytes = sum(disk_usage(self.root).values()) - self.store.bytes_written
            self.stats.files = self.store.files_written
            self.stats.rows_written = self.store.rows_written
            self.stats.store_bytes = self._base_bytes + self.store.bytes_written
            with self._written_changed:
                self._written += 1
                self._written_changed.notify_all()
