"""The recorder's universes on a real bus: whole exchanges from the feeds' directory, and the passive
tap that records whatever clients subscribe (and nothing else); its /metrics."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from openalgo_proxy.history.metrics import RecorderMetricsServer
from openalgo_proxy.history.reader import TickQuery, instruments
from openalgo_proxy.history.recorder import Recorder, Universe
from openalgo_proxy.model import Mode
from tests.support import client, running_system, wait_for

ALL_TIME = TickQuery(0, 4_102_444_800_000)


async def test_a_whole_exchange_is_recorded_from_the_directory(tmp_path: Path) -> None:
    async with running_system(ticks_per_second=20) as system:
        mcx = sorted(system.feed.adapter.directory()["MCX"])
        recorder = Recorder(
            str(tmp_path),
            [system.feed.endpoint],
            Universe(exchanges=("MCX",), mode=Mode.LTP),
            flush_interval=0.2,
            ctx=system.ctx,
        )
        metrics = RecorderMetricsServer("127.0.0.1", 0, recorder.stats)
        await metrics.start()
        await recorder.start()
        try:
            await wait_for(lambda: len(set(system.feed.table.wanted())) >= len(mcx), within=10)

            def recorded() -> set[str]:
                return {symbol for _, symbol, _ in instruments(str(tmp_path), ALL_TIME)}

            await recorder.drained()
            await wait_for(lambda: recorded() == set(mcx), within=15)
            await recorder.drained()
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{metrics.port}/metrics") as resp:
                text = await resp.text()
            assert "openalgo_proxy_recorder_rows_written_total" in text
            assert "openalgo_proxy_recorder_store_bytes" in text
        finally:
            await recorder.stop()
            await metrics.stop()
    assert {(e, m) for e, _, m in instruments(str(tmp_path), ALL_TIME)} == {("MCX", 1)}
    assert recorder.stats.rows_written == recorder.stats.ticks > 0


async def test_the_tap_records_what_clients_subscribe_and_asks_for_nothing(tmp_path: Path) -> None:
    async with running_system(ticks_per_second=20) as system:
        recorder = Recorder(
            str(tmp_path), [system.feed.endpoint], Universe(subscribed=True), flush_interval=0.2, ctx=system.ctx
        )
        await recorder.start()
        try:
            await wait_for(lambda: bool(recorder._subscribed), within=5)
            assert system.feed.table.wanted() == {}  # the tap alone wants nothing from the broker
            async with client(system.url) as c:
                reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 2})
                assert reply["status"] == "success"

                def recorded() -> list[tuple[str, str, int]]:
                    return instruments(str(tmp_path), ALL_TIME)

                async def has_rows() -> bool:
                    await recorder.drained()
                    return bool(recorded())

                for _ in range(100):
                    if await has_rows():
                        break
                    await c.market_data(within=5)
            assert recorded() == [("NSE", "SBIN", 2)]
        finally:
            await recorder.stop()
