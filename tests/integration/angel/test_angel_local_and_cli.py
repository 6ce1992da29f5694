"""The local (simulator-backed) Angel adapter through the proxy, and `openalgo-proxy simulate angel` as a process."""

from __future__ import annotations

import asyncio

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.instruments import InstrumentMasterError
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.angel.spec import SPEC
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.local import LocalAdapter
from openalgo_proxy.model import Mode
from tests.integration.angel.angel_harness import until
from tests.support import client, free_port, running_system, start_cli, stop_process


async def test_local_adapter_streams_through_the_proxy() -> None:
    adapter = LocalAdapter(SPEC, FeedOptions(ticks_per_second=20, seed=2))
    async with asyncio.timeout(20), running_system(adapter=adapter) as system, client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "Depth"})
        assert reply["status"] == "success"
        first = await c.market_data(within=10)
        second = await c.market_data(within=10)
        assert first["broker"] == "angel" and first["mode"] == 3 and len(first["data"]["depth"]["buy"]) == 5
        assert second["seq"] > first["seq"]
        assert adapter.simulator.subscribed() == {(1, "3045", 3)}
    assert adapter.simulator.connection_count == 0


async def test_simulate_angel_cli_process_serves_the_adapter() -> None:
    port = free_port()
    proc = start_cli("simulate", "angel", "--port", str(port), "--ticks-per-second", "20", "--client-code", "C42")
    try:
        sim = AngelSimulator(port=port, client_code="C42")  # not started: only its URLs and credentials
        adapter = AngelAdapter(sim.feed_options(), sim.credentials(), backoff_base=0.05, backoff_cap=0.2)
        ticks: list[object] = []
        async with asyncio.timeout(20):
            started = False
            while not started:  # the process needs a moment to bind; retry the master download
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
    finally:
        assert stop_process(proc) == 0
