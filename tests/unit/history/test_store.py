"""The tick store: round trip of the bus data, readers (DuckDB, pandas, polars), atomic files, retention."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pandas
import polars
import pytest

from openalgo_proxy.brokers.replay.adapter import ticks_of
from openalgo_proxy.history import query, reader
from openalgo_proxy.history.candles import CandleBuilder, TickPoint
from openalgo_proxy.history.sessions import INTERVALS, session_of
from openalgo_proxy.history.store import TMP_SUFFIX, Batch, TickStore, apply_retention, disk_usage, latest_received
from openalgo_proxy.history.timerange import parse_instant
from openalgo_proxy.model import DepthLevel, Mode, Tick
from openalgo_proxy.payload import encode_data

START = parse_instant("2026-12-07T09:15")


def market(n: int, seed: int = 3) -> list[Tick]:
    rng = random.Random(seed)
    ticks, price, volume, t = [], 2500.0, 10_000, START
    for i in range(n):
        t += rng.randint(1, 4000)
        price = round(price + rng.choice((-0.05, 0.0, 0.05, 0.1)), 2)
        volume = rng.randint(0, 50) if i == n // 2 else volume + rng.randint(0, 200)  # one reset mid-way
        ticks.append(
            Tick(
                "RELIANCE",
                "NSE",
                Mode.DEPTH,
                price,
                ltt=t,
                exchange_time=t + 3,
                open=2500.0,
                high=max(price, 2500.0),
                low=min(price, 2500.0),
                close=2490.0,
                volume=volume,
                oi=i,
                bids=(DepthLevel(price - 0.05, 10, 2),),
                asks=(DepthLevel(price + 0.05, 12, 3), DepthLevel(price + 0.1, 1, 1)),
            )
        )
    return ticks


def record(root: Path, ticks: list[Tick], mode: Mode, per_file: int = 97) -> None:
    store = TickStore(root, "test")
    for first in range(0, len(ticks), per_file):
        batch = Batch("2026-12-07", "NSE", int(mode))
        for i, tick in enumerate(ticks[first : first + per_file], start=first):
            batch.data.append(encode_data(tick, mode))
            batch.seqs.append(1000 + i)
            batch.received.append(tick.exchange_time + 50)
        store.write(batch)


@pytest.mark.parametrize("mode", [Mode.LTP, Mode.QUOTE, Mode.DEPTH])
def test_recorded_data_comes_back_equal(tmp_path: Path, mode: Mode) -> None:
    ticks = market(300)
    record(tmp_path, ticks, mode)
    table = reader.read_ticks(tmp_path, reader.TickQuery(START, START + 86_400_000, "NSE", "RELIANCE"))
    assert table.num_rows == 300
    replayed = [tick for _, tick in ticks_of(table)]
    assert [encode_data(t, mode) for t in replayed] == [encode_data(t, mode) for t in ticks]
    assert table.column("seq").to_pylist() == list(range(1000, 1300))


def test_candles_rebuilt_from_the_store_equal_the_live_candles(tmp_path: Path) -> None:
    ticks = market(2000)
    record(tmp_path, ticks, Mode.QUOTE)
    for name in ("1m", "5m", "1h", "1d"):
        builder = CandleBuilder(INTERVALS[name], session_of("NSE"))
        live = []
        for tick in ticks:
            done, _ = builder.add(TickPoint(tick.ltt, tick.ltp, tick.volume, tick.oi))
            if done is not None:
                live.append(done)
        end = parse_instant("2026-12-08")
        last = builder.advance(end)
        live += [last] if last is not None else []
        rebuilt = query.completed_candles(str(tmp_path), "NSE", "RELIANCE", name, START - 3_600_000, end, now=end)
        assert rebuilt == live and len(live) >= 1


def test_duckdb_pandas_and_polars_read_the_store(tmp_path: Path) -> None:
    record(tmp_path, market(500), Mode.QUOTE)
    record(tmp_path, market(200, seed=4), Mode.LTP)
    pattern = f"{tmp_path}/**/*.parquet"
    rows = duckdb.sql(
        f"select mode, count(*), max(volume) from read_parquet('{pattern}', hive_partitioning=true) "
        "where exchange = 'NSE' and symbol = 'RELIANCE' group by mode order by mode"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, 200), (2, 500)]
    assert rows[0][2] is None and rows[1][2] > 0  # an LTP row has no volume
    frame = pandas.read_parquet(tmp_path)
    assert len(frame) == 700 and set(frame["exchange"]) == {"NSE"}
    lazy = polars.scan_parquet(pattern, hive_partitioning=True)
    assert lazy.filter(polars.col("mode") == 2).select(polars.len()).collect().item() == 500


def test_unfinished_files_are_invisible_and_removed_at_start(tmp_path: Path) -> None:
    record(tmp_path, market(100), Mode.QUOTE)
    folder = next(tmp_path.glob("date=*/exchange=*/mode=*"))
    (folder / f".part-1-dead-1.parquet{TMP_SUFFIX}").write_bytes(b"PAR1 half written")
    table = reader.read_ticks(tmp_path, reader.TickQuery(START, START + 86_400_000))
    assert table.num_rows == 100
    assert duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/**/*.parquet')").fetchall() == [(100,)]
    assert TickStore(tmp_path).remove_leftovers() == 1
    assert not list(tmp_path.rglob("*" + TMP_SUFFIX))
    assert latest_received(tmp_path) == max(t.exchange_time for t in market(100)) + 50


def test_disk_usage_and_retention(tmp_path: Path) -> None:
    record(tmp_path, market(100), Mode.QUOTE)
    old = tmp_path / "date=2026-11-01" / "exchange=NSE" / "mode=2"
    old.mkdir(parents=True)
    (old / "part-1-x-1.parquet").write_bytes(b"x" * 10)
    usage = disk_usage(tmp_path)
    assert usage["2026-11-01"] == 10 and usage["2026-12-07"] > 1000
    assert apply_retention(tmp_path, 0, "2026-12-07") == []
    assert apply_retention(tmp_path, 30, "2026-12-07") == ["2026-11-01"]
    assert list(disk_usage(tmp_path)) == ["2026-12-07"]


async def test_replay_paces_by_receive_time_and_cuts_long_pauses(tmp_path: Path) -> None:
    import asyncio
    import time

    from openalgo_proxy.brokers.base import FeedOptions
    from openalgo_proxy.brokers.replay.adapter import ReplayAdapter

    ticks = market(3)
    base = ticks[0].exchange_time
    stamps = [base, base + 1000, base + 600_000]  # 1 s, then a 10-minute pause
    store = TickStore(tmp_path, "test")
    batch = Batch("2026-12-07", "NSE", 2, [encode_data(t, Mode.QUOTE) for t in ticks], [1, 2, 3], stamps)
    store.write(batch)
    adapter = ReplayAdapter(FeedOptions(store_dir=str(tmp_path), replay_from="2026-12-07", replay_speed="100"))
    seen: list[float] = []
    await adapter.start(lambda tick: seen.append(time.monotonic()), lambda rejection: None)
    instrument = adapter.lookup("NSE", "RELIANCE")
    assert instrument is not None and adapter.exchanges() == ("NSE",)
    await adapter.set_wanted({instrument: Mode.QUOTE})
    await asyncio.wait_for(adapter.finished.wait(), 10)
    await adapter.stop()
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.009  # 1 s at speed 100
    assert 0.55 <= seen[2] - seen[1] < 3.0  # the pause cut to 60 s: 0.6 s at speed 100, not 6 s
