"""`openalgo-proxy run --broker upstox-simulator`, `simulate upstox` and `run --broker upstox` against
it or without credentials, as real processes."""

from __future__ import annotations

import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.local import LocalAdapter
from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.simulator import UpstoxSimulator
from openalgo_proxy.brokers.upstox.spec import SPEC
from tests.broker_support import (
    depth_through_proxy,
    feed_without_credentials,
    first_market_data,
    run_process,
    stream_from_simulator_process,
)
from tests.integration.upstox.conftest import sim_options
from tests.support import free_port, start_cli, stop_process

pytestmark = pytest.mark.timeout(90)


async def test_local_adapter_streams_through_the_proxy() -> None:
    adapter = LocalAdapter(SPEC, FeedOptions(ticks_per_second=20, seed=2))
    async with depth_through_proxy(adapter) as (first, second):
        assert first["broker"] == "upstox" and first["mode"] == 3 and len(first["data"]["depth"]["buy"]) == 5
        assert second["seq"] > first["seq"]
        assert list(adapter.simulator.subscribed().values()) == ["full"]
    assert not adapter.simulator.connections()


async def test_simulate_upstox_cli_process_serves_the_adapter() -> None:
    port = free_port()
    proc = start_cli("simulate", "upstox", "--port", str(port), "--ticks-per-second", "20", "--access-token", "T42")
    try:
        sim = UpstoxSimulator(port=port, access_token="T42")  # not started: only its URLs
        adapter = UpstoxAdapter(sim_options(sim), UpstoxCredentials("T42"), backoff_base=0.05)
        await stream_from_simulator_process(proc, adapter)
    finally:
        stop_process(proc)


async def test_run_broker_upstox_simulator_serves_ticks() -> None:
    async with run_process("--broker", "upstox-simulator") as port:
        msg = await first_market_data(port, {"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        assert msg["broker"] == "upstox" and msg["symbol"] == "RELIANCE" and msg["data"]["ltp"] > 0


def test_feed_upstox_without_credentials_says_why_in_one_line() -> None:
    result = feed_without_credentials("upstox", "UPSTOX_")
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "UPSTOX_ACCESS_TOKEN" in err and "Traceback" not in err, err
