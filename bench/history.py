"""Tick store rows of `python -m bench history`: recorder throughput and replay rate.

Recorder: Quote frames as the bus carries them (built from the simulated market) go through the
recorder's frame handler (what its SUB socket calls) and the writer (Arrow JSON parse + Parquet with
zstd + fsync + rename), timed in CPU seconds of this process, all threads included: ticks per
CPU-second is the per-core rate. The ZeroMQ receive itself is not in it (about 1 us per frame).
Replay: a recording of the same frames replayed at --speed max by the replay broker through a real
feed onto a real bus, counted at a SUB socket: ticks per second the bus takes end to end.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import zmq

from openalgo_proxy import topics
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import NIFTY50, SimulatedMarket
from openalgo_proxy.brokers.replay.adapter import ReplayAdapter
from openalgo_proxy.bus import Subscriber, pack_seq
from openalgo_proxy.feed import Feed
from openalgo_proxy.history.recorder import Recorder, Universe
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import encode_data

TARGET = 100_000


def quote_frames(count: int) -> list[list[bytes]]:
    market = SimulatedMarket(NIFTY50, seed=7)
    frames = []
    for i in range(count):
        listing = NIFTY50[i % len(NIFTY50)]
        tick = market.advance(listing.exchange, listing.symbol)
        topic = topics.bus_topic(tick.exchange, tick.symbol, Mode.QUOTE)
        frames.append([topic, pack_seq(i + 1), encode_data(tick, Mode.QUOTE)])
    return frames


def recorder_rate(root: Path, frames: list[list[bytes]]) -> tuple[float, float]:
    """(ticks per CPU-second, ticks per wall second) from frame handler to closed Parquet files."""
    recorder = Recorder(root, [], Universe(subscribed=True), batch_rows=len(frames) + 1)
    cpu, wall = time.process_time(), time.perf_counter()
    handle = recorder._on_message  # the SUB socket's callback
    for parts in frames:
        handle(parts)
    batches = list(recorder._batches.values())
    for batch in batches:
        recorder.store.write(batch)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert recorder.store.rows_written == len(frames)
    return len(frames) / cpu, len(frames) / wall


async def replay_rate(root: Path, expected: int) -> float:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{root}/bench-bus"
    adapter = ReplayAdapter(FeedOptions(store_dir=str(root), replay_speed="max"))
    feed = Feed(adapter, endpoint, status_interval=5.0, coalesce_window=0.0, ctx=ctx)
    await feed.start()
    received = 0
    first = last = 0.0

    def on_message(parts: list[bytes]) -> None:
        nonlocal received, first, last
        if parts[0][:1] != b"#":
            received += 1
            last = time.perf_counter()
            if received == 1:
                first = last

    sub = Subscriber(ctx, [endpoint], on_message, lambda: None)
    sub.attach(asyncio.get_running_loop())
    for listing in NIFTY50:
        sub.subscribe(topics.bus_topic(listing.exchange, listing.symbol, Mode.QUOTE))
    deadline = time.monotonic() + 120
    while (received < expected or not adapter.finished.is_set()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if adapter.finished.is_set() and time.perf_counter() - last > 2.0:
            break  # the bus dropped some: report what arrived
    sub.close()
    await feed.stop()
    ctx.term()
    return (received - 1) / (last - first) if received > 1 and last > first else 0.0


def run(ticks: int = 200_000) -> str:
    """The two lines of `python -m bench history`."""
    frames = quote_frames(ticks)
    with tempfile.TemporaryDirectory(prefix="bench-ticks-") as folder:
        root = Path(folder)
        runs = [recorder_rate(root / f"run{i}", frames) for i in range(3)]
        cpu = sorted(r[0] for r in runs)[1]
        wall = sorted(r[1] for r in runs)[1]
        replay = asyncio.run(replay_rate(root / "run0", ticks))
    return (
        f"recorder: {cpu:,.0f} Quote ticks per CPU-second into Parquet ({wall:,.0f}/s wall; median of 3 x "
        f"{ticks:,}; target >= {TARGET:,}/s per core)\n"
        f"replay --speed max: {replay:,.0f} ticks/s through a feed onto the bus, counted at a SUB socket"
    )


if __name__ == "__main__":
    print(run())  # noqa: T201 (CLI output)
