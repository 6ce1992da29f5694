"""Record a simulated session with real processes (feed on the simulated market, recorder), kill -9
the recorder mid-way and restart it; then replay the recording at max speed through the proxy."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.replay.adapter import ReplayAdapter
from openalgo_proxy.history.recorder import GAPS_FILE
from tests.support import Client, client, free_port, running_system, start_cli, stop_process, wait_for

pytestmark = pytest.mark.slow

SYMBOLS = ("RELIANCE", "INFY", "SBIN")
FLUSH = 0.3


def closed_files(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))}


def count_rows(root: Path) -> int:
    result = duckdb.sql(f"select count(*) from read_parquet('{root}/**/*.parquet', hive_partitioning=true)")
    rows = result.fetchall()
    return int(rows[0][0])


def wait_until(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    root = tmp_path_factory.mktemp("ticks")
    bus = f"tcp://127.0.0.1:{free_port()}"
    feed = start_cli("feed", "--broker", "simulator", "--bus", bus, "--ticks-per-second", "100", "--seed", "5")
    record_args = (
        "record",
        "--bus",
        bus,
        "--dir",
        str(root),
        "--symbols",
        ",".join(f"NSE:{s}" for s in SYMBOLS),
        "--flush-interval",
        str(FLUSH),
    )
    facts: dict[str, object] = {}
    recorder = start_cli(*record_args)
    try:
        wait_until(lambda: len(closed_files(root)) >= 6, within=30)
        before = closed_files(root)
        os.kill(recorder.pid, signal.SIGKILL)
        facts["killed_at_ms"] = time.time() * 1000
        recorder.wait(5)
        facts["before_kill"] = before
        recorder = start_cli(*record_args)
        wait_until(lambda: (root / GAPS_FILE).exists() and len(closed_files(root)) >= len(before) + 6, within=30)
        assert stop_process(recorder) == 0
        err = recorder.stderr.read().decode() if recorder.stderr is not None else ""
        facts["recorder_log"] = err
    finally:
        stop_process(recorder, signal.SIGKILL)
        stop_process(feed)
    yield root, facts


def test_killed_recorder_keeps_closed_files_and_reports_the_gap(recording: tuple[Path, dict[str, object]]) -> None:
    root, facts = recording
    before = facts["before_kill"]
    assert isinstance(before, dict)
    after = closed_files(root)
    for path, digest in before.items():  # every file closed before the kill is intact
        assert after[path] == digest
        assert duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0] > 0
    assert not list(root.rglob("*.tmp"))  # the restarted recorder removed any unfinished file
    assert count_rows(root) > 0
    gaps = [json.loads(line) for line in (root / GAPS_FILE).read_text().splitlines()]
    assert len(gaps) == 1
    # what the kill lost is the open batch: the newest recorded tick is at most one flush interval
    # (plus a loaded machine's scheduling slack) older than the kill; the rest of the gap is the restart
    gap = gaps[0]
    killed_at = facts["killed_at_ms"]
    assert isinstance(killed_at, float)
    assert killed_at - (FLUSH + 1.5) * 1000 <= gap["from"] <= killed_at
    assert gap["to"] > killed_at and gap["seconds"] == round((gap["to"] - gap["from"]) / 1000, 3)
    assert "nothing recorded for" in str(facts["recorder_log"])


async def test_replay_at_max_speed_delivers_every_recorded_tick_in_order(
    recording: tuple[Path, dict[str, object]],
) -> None:
    root, _ = recording
    expected: dict[str, list[tuple[float, int, int, int]]] = {}
    for symbol, ltp, ltt, volume, oi in duckdb.sql(
        f"select symbol, ltp, ltt, volume, oi from read_parquet('{root}/**/*.parquet', hive_partitioning=true) "
        "order by received, seq"
    ).fetchall():
        expected.setdefault(symbol, []).append((ltp, ltt, volume, oi))
    total = sum(len(v) for v in expected.values())
    assert set(expected) == set(SYMBOLS) and total > 100
    adapter = ReplayAdapter(FeedOptions(store_dir=str(root), replay_speed="max"))
    async with (
        running_system(adapter=adapter, proxy={"send_buffer_bytes": 64 << 20}) as system,
        client(system.url, max_size=None) as c,
    ):
        symbols = [{"symbol": s, "exchange": "NSE"} for s in SYMBOLS]
        reply = await c.reply({"action": "subscribe", "symbols": symbols, "mode": 2})
        assert reply["status"] == "success", reply
        got: dict[str, list[tuple[float, int, int, int]]] = {}
        for _ in range(total):
            data = (await c.market_data(within=20))["data"]
            got.setdefault(data["symbol"], []).append((data["ltp"], data["ltt"], data["volume"], data["oi"]))
        await wait_for(adapter.finished.is_set, within=10)
        assert not c.market and await _extra(c) == []
    assert got == expected


async def _extra(c: Client) -> list[dict[str, object]]:
    """Anything more that arrives within a moment (nothing should)."""
    try:
        return [await c.recv(0.3)]
    except TimeoutError:
        return []


def test_history_cli_prints_candles_and_ticks(recording: tuple[Path, dict[str, object]]) -> None:
    root, _ = recording

    def history(*args: str) -> list[str]:
        command = [sys.executable, "-m", "openalgo_proxy", "history", "NSE:RELIANCE", "--dir", str(root), *args]
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode().splitlines()

    ticks = history("--interval", "ticks", "--format", "csv", "--limit", "5")
    assert ticks[0].startswith("time,received,exchange_time,ltp") and len(ticks) == 6
    table = history("--interval", "ticks", "--limit", "3")
    assert "NSE:RELIANCE ticks (3 rows)" in "\n".join(table)


async def test_history_action_pages_recorded_ticks_and_answers_candles(
    recording: tuple[Path, dict[str, object]],
) -> None:
    root, _ = recording
    expected = duckdb.sql(
        f"select ltp, ltt, volume from read_parquet('{root}/**/*.parquet', hive_partitioning=true) "
        "where symbol = 'INFY' order by received, seq"
    ).fetchall()
    async with running_system(archive_dir=str(root)) as system, client(system.url) as c:
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 19800))
        request = {"action": "history", "symbol": "INFY", "exchange": "NSE", "interval": "ticks", "start": today}
        pages: list[dict[str, object]] = []
        offset: int | None = 0
        while offset is not None:
            reply = await c.reply({**request, "limit": 40, "offset": offset, "request_id": offset}, within=20)
            assert reply["type"] == "history" and reply["status"] == "success", reply
            assert reply["request_id"] == offset and reply["count"] == len(reply["rows"]) <= 40
            pages.extend(reply["rows"])
            offset = reply["next_offset"]
        assert [(r["ltp"], r["ltt"], r["volume"]) for r in pages] == [tuple(row) for row in expected]
        candles = await c.reply({**request, "interval": "5m"}, within=20)
        assert candles["type"] == "history" and candles["interval"] == "5m"
        assert all(set(row) >= {"time", "open", "high", "low", "close", "volume", "oi"} for row in candles["rows"])
        bad = await c.reply({**request, "interval": "7m"})
        assert bad["type"] == "error" and bad["code"] == "INVALID_PARAMETERS"
    async with running_system() as system, client(system.url) as c:  # a proxy without a tick store
        reply = await c.reply({"action": "history", "symbol": "INFY", "exchange": "NSE", "start": "2026-12-07"})
        assert reply["code"] == "INVALID_ACTION"
