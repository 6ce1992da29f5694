"""`simulate noren --dialect ...` + `feed --broker NAME` with credentials from the environment, `run --broker
NAME-simulator`, and a feed without credentials, as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import client, free_port, start_cli, stop_process

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


async def test_simulate_noren_and_a_feed_with_env_credentials_stream_through_a_proxy(tmp_path: Path) -> None:
    sim_port, proxy_port = free_port(), free_port()
    token_file = tmp_path / "token"
    token_file.write_text("T0KEN\n")
    sim = start_cli(
        "simulate", "noren", "--dialect", "definedge", "--port", str(sim_port), "--user-id", "DE77", "--token", "T0KEN"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFINEDGE_")}
    env |= {"DEFINEDGE_USER_ID": "DE77", "DEFINEDGE_ACCESS_TOKEN_FILE": str(token_file)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", "--broker", "definedge", "--port", str(proxy_port),
        "--ws-url", f"ws://127.0.0.1:{sim_port}/NorenWSTRTP/", "--bus", f"tcp://127.0.0.1:{free_port()}",
        "--instruments", f"http://127.0.0.1:{sim_port}/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"ready: ws://" in line, line
        async with asyncio.timeout(20), client(f"ws://127.0.0.1:{proxy_port}") as c:
            await c.send({"action": "subscribe", "symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 2})
            msg = await c.market_data(within=10)
            assert msg["broker"] == "definedge" and msg["data"]["ltp"] > 0
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert stop_process(sim) == 0


async def test_run_broker_shoonya_simulator_serves_ticks() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", "--broker", "shoonya-simulator", "--port", str(port),
        "--bus", f"tcp://127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"ready: ws://" in line, line
        async with asyncio.timeout(20), client(f"ws://127.0.0.1:{port}") as c:
            await c.send({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 3})
            msg = await c.market_data(within=10)
            assert msg["broker"] == "shoonya" and len(msg["data"]["depth"]["buy"]) == 5
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0


def test_a_noren_feed_without_credentials_says_why_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLATTRADE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openalgo_proxy",
            "feed",
            "--broker",
            "flattrade",
            "--bus",
            f"tcp://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "FLATTRADE_USER_ID" in err and "Traceback" not in err, err
