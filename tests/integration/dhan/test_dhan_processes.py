"""`openalgo-proxy run --broker dhan-simulator`, `simulate dhan` and `run --broker dhan` without
credentials, as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.dhan.adapter import DhanAdapter
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator
from openalgo_proxy.brokers.dhan.spec import SPEC
from openalgo_proxy.brokers.local import LocalAdapter
from openalgo_proxy.brokers.master import InstrumentMasterError
from openalgo_proxy.model import Mode
from tests.integration.dhan.conftest import sim_options, until
from tests.support import client, free_port, running_system, start_cli, stop_process

pytestmark = pytest.mark.timeout(90)


async def test_local_adapter_streams_through_the_proxy() -> None:
    adapter = LocalAdapter(SPEC, FeedOptions(ticks_per_second=20, seed=2))
    async with asyncio.timeout(20), running_system(adapter=adapter) as system, client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "Depth"})
        assert reply["status"] == "success"
        first = await c.market_data(within=10)
        second = await c.market_data(within=10)
        assert first["broker"] == "dhan" and first["mode"] == 3 and len(first["data"]["depth"]["buy"]) == 5
        assert second["seq"] > first["seq"]
        assert adapter.simulator.subscribed() == {(1, 3045, 21)}
    assert not adapter.simulator.connections()


async def test_simulate_dhan_cli_process_serves_the_adapter() -> None:
    port = free_port()
    proc = start_cli("simulate", "dhan", "--port", str(port), "--ticks-per-second", "20", "--client-id", "C42")
    try:
        sim = DhanSimulator(port=port, client_id="C42")  # not started: only its URLs and credentials
        adapter = DhanAdapter(sim_options(sim), DhanCredentials("C42", sim.access_token), backoff_base=0.05)
        ticks: list[object] = []
        async with asyncio.timeout(20):
            started = False
            while not started:  # the process needs a moment to bind; retry the master download
                try:
                    await adapter.start(ticks.append, ticks.append)
                    started = True
                except InstrumentMasterError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                    await asyncio.sleep(0.1)
            nifty = adapter.lookup("NSE_INDEX", "NIFTY")
            assert nifty is not None
            await adapter.set_wanted({nifty: Mode.QUOTE})
            await until(lambda: len(ticks) >= 2, within=10, what="ticks from the simulator process")
        await adapter.stop()
    finally:
        assert stop_process(proc) == 0


async def test_run_broker_dhan_simulator_serves_ticks() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", "--broker", "dhan-simulator", "--port", str(port),
        "--bus", f"tcp://127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 40)
        assert b"ready: ws://" in line, line
        async with asyncio.timeout(20), client(f"ws://127.0.0.1:{port}") as c:
            await c.send({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
            msg = await c.market_data(within=10)
            assert msg["broker"] == "dhan" and msg["symbol"] == "RELIANCE" and msg["data"]["ltp"] > 0
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0


def test_run_broker_dhan_without_credentials_says_why_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHAN_")}
    result = subprocess.run(
        [sys.executable, "-m", "openalgo_proxy", "feed", "--broker", "dhan", "--bus", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "DHAN_CLIENT_ID" in err and "Traceback" not in err, err
