"""`simulate noren --dialect ...` + `feed --broker NAME` with credentials from the environment, `run --broker
NAME-simulator`, and a feed without credentials, as real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.broker_support import feed_without_credentials, first_market_data, run_process
from tests.support import free_port, start_cli, stop_process

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


async def test_simulate_noren_and_a_feed_with_env_credentials_stream_through_a_proxy(tmp_path: Path) -> None:
    sim_port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text("T0KEN\n")
    sim = start_cli(
        "simulate", "noren", "--dialect", "definedge", "--port", str(sim_port), "--user-id", "DE77", "--token", "T0KEN"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFINEDGE_")}
    env |= {"DEFINEDGE_USER_ID": "DE77", "DEFINEDGE_ACCESS_TOKEN_FILE": str(token_file)}
    try:
        async with run_process(
            "--broker", "definedge", "--ws-url", f"ws://127.0.0.1:{sim_port}/NorenWSTRTP/",
            "--instruments", f"http://127.0.0.1:{sim_port}/", env=env,
        ) as port:  # fmt: skip
            msg = await first_market_data(
                port, {"action": "subscribe", "symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 2}
            )
            assert msg["broker"] == "definedge" and msg["data"]["ltp"] > 0
    finally:
        assert stop_process(sim) == 0


async def test_run_broker_shoonya_simulator_serves_ticks() -> None:
    async with run_process("--broker", "shoonya-simulator") as port:
        msg = await first_market_data(port, {"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 3})
        assert msg["broker"] == "shoonya" and len(msg["data"]["depth"]["buy"]) == 5


def test_a_noren_feed_without_credentials_says_why_in_one_line() -> None:
    result = feed_without_credentials("flattrade", "FLATTRADE_")
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "FLATTRADE_USER_ID" in err and "Traceback" not in err, err
