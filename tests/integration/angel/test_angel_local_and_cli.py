"""The local (simulator-backed) Angel adapter through the proxy, and `openalgo-proxy simulate angel` as a process."""

from __future__ import annotations

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.angel.spec import SPEC
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.local import LocalAdapter
from tests.broker_support import depth_through_proxy, stream_from_simulator_process
from tests.support import free_port, start_cli, stop_process


async def test_local_adapter_streams_through_the_proxy() -> None:
    adapter = LocalAdapter(SPEC, FeedOptions(ticks_per_second=20, seed=2))
    async with depth_through_proxy(adapter) as (first, second):
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
        assert len(await stream_from_simulator_process(proc, adapter)) >= 2
    finally:
        assert stop_process(proc) == 0
