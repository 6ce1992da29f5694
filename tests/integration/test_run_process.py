"""`openalgo-proxy run` as a real process tree: ready, serving ticks, and stopped cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import psutil
import pytest
import websockets

from tests.support import client, free_port

pytestmark = pytest.mark.slow


async def _start_run(*extra: str) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", "--port", str(port),
        "--bus", f"tcp://127.0.0.1:{free_port()}", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"ready: ws://" in line, line
    return proc, port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_run_serves_ticks_and_stops_every_child(sig: signal.Signals) -> None:
    proc, port = await _start_run()
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2, "feed and proxy run as separate processes"
    try:
        async with client(f"ws://127.0.0.1:{port}") as c:
            started = time.monotonic()
            await c.send({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 3})
            msg = await c.market_data(within=2.0)
            assert time.monotonic() - started < 2.0
            assert msg["symbol"] == "RELIANCE" and msg["data"]["depth"]["buy"][0]["price"] > 0
    finally:
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"orphans left: {alive}"
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr


async def test_killed_child_is_restarted_by_the_supervisor() -> None:
    proc, port = await _start_run()
    try:
        proxy = next(p for p in psutil.Process(proc.pid).children() if "serve" in p.cmdline())
        proxy.kill()
        deadline = time.monotonic() + 20
        while True:
            try:
                async with client(f"ws://127.0.0.1:{port}") as c:
                    await c.send({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
                    reply = await c.next_reply()
                    if reply.get("status") == "success":
                        await c.market_data(within=5)
                        break
            except (OSError, websockets.InvalidHandshake):
                pass  # the proxy is still restarting
            assert time.monotonic() < deadline, "proxy not restarted"
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_auth_none_on_a_public_address_refuses_to_start() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"only allowed on loopback" in err
