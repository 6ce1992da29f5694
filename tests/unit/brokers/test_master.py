"""The daily instrument master loader: file, URL cached for the IST day, corrupt cache, pruning, errors."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from openalgo_proxy.brokers.master import InstrumentMasterError, cache_path, load_daily, today_ist, write_atomic


def parse(data: bytes) -> list[str]:
    value = json.loads(data)
    if not isinstance(value, list):
        raise ValueError("not a list")
    return [str(v) for v in value]


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[int]]]:
    hits: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(1)
        if request.path == "/missing":
            return web.Response(status=404)
        return web.Response(body=json.dumps(["A", "B"]).encode())

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


def test_the_trading_day_is_indian() -> None:
    late_utc = dt.datetime(2025, 12, 1, 19, 0, tzinfo=dt.UTC)  # 00:30 IST on the 2nd
    assert today_ist(late_utc) == dt.date(2025, 12, 2)


async def test_file_source_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('["X"]')
    assert await load_daily(str(path), parse, prefix="t") == ["X"]
    with pytest.raises(InstrumentMasterError, match="cannot read"):
        await load_daily(str(tmp_path / "none.json"), parse, prefix="t")
    path.write_text("{}")
    with pytest.raises(InstrumentMasterError, match="cannot parse"):
        await load_daily(str(path), parse, prefix="t")


async def test_url_cached_for_the_day_and_older_days_pruned(tmp_path: Path, server: tuple[str, list[int]]) -> None:
    base, hits = server
    url, cache = f"{base}/master.json", str(tmp_path)
    day = dt.date(2025, 12, 1)
    other = cache_path(cache, "t", f"{base}/other.json", day, ".json")
    write_atomic(other, b'["other source"]')  # another source's cache is not pruned
    assert await load_daily(url, parse, prefix="t", suffix=".json", cache_dir=cache, today=day) == ["A", "B"]
    assert await load_daily(url, parse, prefix="t", suffix=".json", cache_dir=cache, today=day) == ["A", "B"]
    assert len(hits) == 1
    await load_daily(url, parse, prefix="t", suffix=".json", cache_dir=cache, today=day + dt.timedelta(days=1))
    assert len(hits) == 2
    names = sorted(os.listdir(tmp_path))
    assert names == sorted([other.name, cache_path(cache, "t", url, day + dt.timedelta(days=1), ".json").name])


async def test_corrupt_cache_falls_back_to_download(tmp_path: Path, server: tuple[str, list[int]]) -> None:
    base, hits = server
    url, day = f"{base}/master.json", dt.date(2025, 12, 1)
    cached = cache_path(str(tmp_path), "t", url, day, "")
    write_atomic(cached, b"{truncated")
    assert await load_daily(url, parse, prefix="t", cache_dir=str(tmp_path), today=day) == ["A", "B"]
    assert len(hits) == 1
    assert json.loads(cached.read_bytes()) == ["A", "B"]  # the cache was repaired


async def test_download_failure_is_the_one_error_type(tmp_path: Path, server: tuple[str, list[int]]) -> None:
    base, _ = server
    with pytest.raises(InstrumentMasterError, match="HTTP 404"):
        await load_daily(f"{base}/missing", parse, prefix="t", cache_dir=str(tmp_path))
    with pytest.raises(InstrumentMasterError, match="download failed"):
        await load_daily("http://127.0.0.1:1/x", parse, prefix="t")
    assert os.listdir(tmp_path) == []
