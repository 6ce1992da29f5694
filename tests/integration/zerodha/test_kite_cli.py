"""The user story as real processes: `openalgo-proxy simulate zerodha --port P`, then
`KITE_API_KEY=.. KITE_ACCESS_TOKEN=.. openalgo-proxy run --broker zerodha` pointed at it, then a client."""

from __future__ import annotations

import json
import urllib.request

import pytest

from openalgo_proxy.brokers.market import future_symbol
from tests.support import client, eventually, free_port, start_cli, stop_process

GOLD_FUT = future_symbol("GOLD")

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


async def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: ASYNC210 - loopback, 1 s
            return bool(response.status == 200)
    except OSError:
        return False


async def test_run_broker_zerodha_against_the_simulator_process() -> None:
    sim_port, proxy_port, bus_port = free_port(), free_port(), free_port()
    sim = start_cli("simulate", "zerodha", "--port", str(sim_port), "--ticks-per-second", "10", "--seed", "5")
    run = None
    try:
        instruments = f"http://127.0.0.1:{sim_port}/instruments"

        await eventually(lambda: _http_ok(instruments), within=15)
        env = {"KITE_API_KEY": "sim_api_key", "KITE_ACCESS_TOKEN": "sim_access_token"}
        run = start_cli(
            "run",
            "--broker",
            "zerodha",
            "--ws-url",
            f"ws://127.0.0.1:{sim_port}",
            "--instruments",
            instruments,
            "--port",
            str(proxy_port),
            "--bus",
            f"tcp://127.0.0.1:{bus_port}",
            env=env,
        )
        url = f"ws://127.0.0.1:{proxy_port}"
        # ready = the proxy heard the zerodha feed on the bus and the feed's warm connection is up
        await eventually(lambda: _http_ok(f"http://127.0.0.1:{proxy_port}/readyz"), within=20)
        async with client(url) as c:
            auth = await c.reply({"action": "authenticate", "api_key": "anything"})
            assert auth["status"] == "success" and auth["broker"] == "zerodha"
            reply = await c.reply(
                {
                    "action": "subscribe",
                    "symbols": [
                        {"symbol": "NIFTY", "exchange": "NSE_INDEX"},
                        {"symbol": GOLD_FUT, "exchange": "MCX"},
                    ],
                    "mode": 2,
                },
                within=10,
            )
            assert reply["status"] == "success", json.dumps(reply)
            seen = {}
            while len(seen) < 2:
                msg = await c.market_data(within=10)
                seen[msg["symbol"]] = msg
            assert {m["broker"] for m in seen.values()} == {"zerodha"}
            assert 100000 < seen[GOLD_FUT]["data"]["ltp"] < 160000
    finally:
        if run is not None:
            assert stop_process(run) == 0
        assert stop_process(sim) == 0
