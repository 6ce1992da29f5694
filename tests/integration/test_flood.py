"""A client flooding commands is throttled and disconnected (RATE_LIMITED, 4029) while another
client's round trips and ticks stay within their normal range."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import pytest

from tests.support import Client, client, running_system

pytestmark = pytest.mark.timing

FLOODER = Path(__file__).with_name("flooder.py")
FLOOD_SECONDS = 3.0


async def _round_trips(c: Client, count: int) -> list[float]:
    """App-level ping round trips (ticks arriving meanwhile are kept aside)."""
    samples = []
    for i in range(count):
        started = time.perf_counter()
        pong = await c.reply({"action": "ping", "_pingId": i}, within=5)
        assert pong["type"] == "pong" and pong["_pingId"] == i
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return samples


async def test_flooder_is_throttled_and_disconnected_while_others_keep_their_latency() -> None:
    async with running_system(ticks_per_second=20) as system, client(system.url) as victim:
        reply = await victim.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
        assert reply["status"] == "success"
        await victim.market_data()
        baseline = await _round_trips(victim, 25)

        flooder = await asyncio.create_subprocess_exec(
            sys.executable, str(FLOODER), system.url, str(FLOOD_SECONDS),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert flooder.stdout is not None
            assert await asyncio.wait_for(flooder.stdout.readline(), 10) == b"flooding\n"
            victim.market.clear()
            during = await _round_trips(victim, 40)
            ticks_during = len(victim.market)
            out, err = await asyncio.wait_for(flooder.communicate(), FLOOD_SECONDS + 15)
        finally:
            if flooder.returncode is None:
                flooder.kill()
                await flooder.wait()
        assert flooder.returncode == 0, err.decode()
        report = json.loads(out.decode().strip().splitlines()[-1])

        # the flooder was throttled, then disconnected with 4029, again and again
        assert report["replies"].get("RATE_LIMITED", 0) >= 1, report
        assert report["closes"].get("4029", 0) >= 2, report
        # the victim kept streaming and its round trips stayed in their normal range
        assert ticks_during >= 5, f"only {ticks_during} ticks during the flood"
        base, flood = statistics.median(baseline), statistics.median(during)
        assert flood <= max(5 * base, base + 0.02), f"median round trip {flood * 1000:.1f} ms vs {base * 1000:.1f} ms"
        assert max(during) < 1.0, f"worst round trip {max(during) * 1000:.0f} ms during the flood"
