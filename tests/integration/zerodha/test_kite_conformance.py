"""Conformance with Zerodha's official `kiteconnect` KiteTicker against the simulator.

Each test runs the SDK in its own process (its Twisted reactor runs once per process). The SDK's
received bytes must be bytes the simulator sent, and the SDK's own parse of them must equal our
codec's decode of the same bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import OrderUpdate
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator

from ...unit.zerodha.test_kite_sdk_parity import our_view
from .conftest import wait_for

pytest.importorskip("kiteconnect")
pytestmark = pytest.mark.timeout(40)

CLIENT = Path(__file__).with_name("kiteticker_client.py")
RELIANCE, INFY, NIFTY50, SENSEX = 738561, 408065, 256265, 265
USDINR = 1185 * 256 + 3
CRUDE = 450161 * 256 + 7


async def run_sdk(sim: KiteSimulator, token: str, plan: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, TZ="UTC")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        str(sim.port),
        sim.api_key,
        token,
        json.dumps(plan),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(30):
            if plan.get("order_update"):
                await wait_for(lambda: bool(sim.connections), within=20, what="the SDK to connect")
                await wait_for(lambda: len(sim.connections[0].modes) == len(plan_tokens(plan)), what="subscribe")
                await sim.send_text(OrderUpdate({"order_id": "1", "status": "COMPLETE"}))
            stdout, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def plan_tokens(plan: dict[str, Any]) -> set[int]:
    return {t for mode in ("ltp", "quote", "full") for t in plan.get(mode, [])}


async def test_kiteticker_decodes_simulator_bytes_exactly_like_our_codec() -> None:
    sim = KiteSimulator(ticks_per_second=10.0, heartbeat_interval=0.1, seed=3, record=True)
    await sim.start()
    try:
        plan = {
            "full": [RELIANCE, NIFTY50, USDINR],
            "quote": [INFY, SENSEX],
            "ltp": [CRUDE],
            "frames": 4,
            "order_update": True,
        }
        out = await run_sdk(sim, "sim_access_token", plan)
    finally:
        await sim.stop()
    assert out["connected"] is True
    assert out["heartbeats"] >= 1
    assert out["orders"] == [{"order_id": "1", "status": "COMPLETE"}]
    assert sim.accepted_headers[0].get("X-Kite-Version") == "3"
    sent = {frame for _, frame in sim.recorded}
    assert len(out["frames"]) >= 4
    kinds: set[codec.PacketKind] = set()
    for frame in out["frames"]:
        raw = bytes.fromhex(frame["hex"])
        assert raw in sent  # byte-exact: the SDK got what the simulator sent
        packets = codec.decode_frame(raw)
        kinds.update(p.kind for p in packets)
        assert [our_view(p) for p in packets] == frame["ticks"]
    assert kinds == set(codec.PacketKind)  # every packet kind went through the SDK
    modes = {t["instrument_token"]: t["mode"] for f in out["frames"] for t in f["ticks"]}
    assert modes == {RELIANCE: "full", NIFTY50: "full", USDINR: "full", INFY: "quote", SENSEX: "quote", CRUDE: "ltp"}


async def test_kiteticker_is_refused_with_403_on_a_bad_token() -> None:
    sim = KiteSimulator(heartbeat_interval=0.1)
    await sim.start()
    try:
        out = await run_sdk(sim, "expired_token", {"quote": [RELIANCE]})
    finally:
        await sim.stop()
    assert out["connected"] is False and out["frames"] == []
    assert sim.rejections[403] == 1 and sim.connections_total == 0
    assert any("403" in reason for _, reason in out["errors"])
