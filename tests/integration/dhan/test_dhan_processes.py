"""`openalgo-proxy run --broker dhan-simulator`, `simulate dhan` and `run --broker dhan` without
credentials, as real processes."""

from __future__ import annotations

import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.dhan.adapter import DhanAdapter
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator
from openalgo_proxy.brokers.dhan.spec import SPEC
from openalgo_proxy.brokers.local import LocalAdapter
from tests.broker_support import (
    depth_through_proxy,
    feed_without_credentials,
    first_market_data,
    run_process,
    stream_from_simulator_process,
)
from tests.integration.dhan.conftest import sim_options
from tests.support import free_port, start_cli, stop_process

pytestmark = pytest.mark.timeout(90)


async def test_local_adapter_streams_through_the_proxy() -> None:
    adapter = LocalAdapter(SPEC, FeedOptions(ticks_per_second=20, seed=2))
    async with depth_through_proxy(adapter) as (first, second):
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
        await stream_from_simulator_process(proc, adapter)
    finally:
        assert stop_process(proc) == 0


async def test_run_broker_dhan_simulator_serves_ticks() -> None:
    async with run_process("--broker", "dhan-simulator") as port:
        msg = await first_market_data(port, {"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        assert msg["broker"] == "dhan" and msg["symbol"] == "RELIANCE" and msg["data"]["ltp"] > 0


def test_run_broker_dhan_without_credentials_says_why_in_one_line() -> None:
    result = feed_without_credentials("dhan", "DHAN_")
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "DHAN_CLIENT_ID" in err and "Traceback" not in err, err
