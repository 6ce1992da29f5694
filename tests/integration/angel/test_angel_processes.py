"""`openalgo-proxy simulate angel` and `openalgo-proxy run --broker angel` as real processes.

The feed logs in over REST with the TOTP, downloads the master and streams over SmartStream from the
simulator process exactly as it would from Angel; a WebSocket client of the proxy gets the ticks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from openalgo_proxy.brokers.angel.simulator import DEFAULT_TOTP_SECRET, MASTER_PATH
from tests.support import client, free_port, start_cli, stop_process


@pytest.mark.slow
async def test_run_broker_angel_against_the_simulator_process() -> None:
    sim_port, proxy_port, bus_port = free_port(), free_port(), free_port()
    sim = start_cli("simulate", "angel", "--port", str(sim_port), "--ticks-per-second", "10", "--pin", "2468")
    base = f"http://127.0.0.1:{sim_port}"
    env = {
        "ANGEL_API_KEY": "sim-api-key",
        "ANGEL_CLIENT_CODE": "SIM001",
        "ANGEL_PIN": "2468",
        "ANGEL_TOTP_SECRET": DEFAULT_TOTP_SECRET,
    }
    run = start_cli(
        "run",
        "--broker", "angel",
        "--ws-url", f"ws://127.0.0.1:{sim_port}/smart-stream",
        "--api-url", base,
        "--instruments", base + MASTER_PATH,
        "--port", str(proxy_port),
        "--bus", f"tcp://127.0.0.1:{bus_port}",
        env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(40):
            reply: dict[str, Any] = {}
            deadline = time.monotonic() + 35
            while reply.get("status") != "success":  # the processes need a few seconds to come up
                assert run.poll() is None and sim.poll() is None, "a process exited early"
                assert time.monotonic() < deadline, reply
                try:
                    async with client(f"ws://127.0.0.1:{proxy_port}") as c:
                        reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE"})
                        if reply.get("status") == "success":
                            first = await c.market_data(within=10)
                            second = await c.market_data(within=10)
                except OSError:
                    pass  # proxy not listening yet
                if reply.get("status") != "success":
                    await asyncio.sleep(0.2)
        assert first["broker"] == "angel" and first["mode"] == 3 and second["seq"] > first["seq"]
        assert len(first["data"]["depth"]["buy"]) == 5 and first["data"]["ltp"] > 0
    finally:
        assert stop_process(run) == 0
        assert stop_process(sim) == 0
