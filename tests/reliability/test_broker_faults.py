"""Broker-side fault scenarios (issue 7, scenarios 1-4), the broker reached through the fault proxy.

Already covered elsewhere and not repeated here: a clean drop with resubscribe of exactly the
wanted set (tests/integration/angel/test_angel_adapter.py), the simulator-side `mute` switch, an
expired-token 401 followed by re-login, the end-to-end fresh snapshot after a drop
(tests/integration/angel/test_angel_end_to_end.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import statistics
import time

import pytest

from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import Backoff, ConnectionState
from tests.reliability.faultproxy import Direction
from tests.reliability.scenarios import angel_under_test, broker_under_test, resources, system_behind_faults
from tests.support import client, wait_for

pytestmark = pytest.mark.timing

STALL = 0.6
BROKERS = ["angel", "zerodha"]
RELIANCE_QUOTE = {(1, "2885", 2)}  # (exchange type, token, Angel mode) at the simulator


def _sim(broker_sim: object) -> AngelSimulator:
    assert isinstance(broker_sim, AngelSimulator)
    return broker_sim


@pytest.mark.parametrize("broker_name", BROKERS)
async def test_mute_broker_socket_watchdog_reconnects_and_clients_get_a_fresh_snapshot(broker_name: str) -> None:
    """Scenario 1: the TCP connection stays open but the broker's side goes silent (half-open)."""
    backoff_cap = 0.2  # the default of both helpers
    async with (
        broker_under_test(broker_name, quiet=True, stall_timeout=STALL) as broker,
        system_behind_faults(broker) as fs,
        client(fs.system.url) as c,
    ):
        await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        first = await c.market_data(within=5)  # no ticks: the simulator sends only snapshots
        assert fs.fp.accepted == 1
        muted_at = time.monotonic()
        assert fs.fp.mute_live(Direction.DOWN) == 1
        await wait_for(lambda: fs.fp.accepted == 2, within=5)
        reconnect_after = fs.fp.accept_times[1] - muted_at
        # heartbeats keep the watchdog fed until the mute; it fires within its timeout
        # (checked at STALL/4 steps) plus one backoff delay
        assert STALL * 0.9 <= reconnect_after <= STALL * 1.25 + backoff_cap + 0.5, reconnect_after
        fresh = await c.market_data(within=5)
        assert fresh["topic"] == "RELIANCE.NSE" and fresh["seq"] > first["seq"]
        await wait_for(lambda: broker.upstream() == broker.reliance_quote and broker.connections() == 1, within=5)
        assert fs.adapter.status().state is ConnectionState.CONNECTED
        if broker.name == "angel":
            assert _sim(broker.simulator).logins == 1  # silence is not an auth problem


@pytest.mark.parametrize("broker_name", BROKERS)
async def test_quiet_market_with_latency_causes_no_reconnect_storm(broker_name: str) -> None:
    """Scenario 2: no ticks at all, 50 ms added each way; heartbeats alone keep the connection."""
    async with (
        broker_under_test(broker_name, quiet=True, stall_timeout=STALL) as broker,
        system_behind_faults(broker) as fs,
        client(fs.system.url) as c,
    ):
        await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        await c.market_data(within=5)
        fs.fp.faults.latency = 0.05
        down = fs.fp.bytes_down
        await asyncio.sleep(3.5 * STALL)  # a measurement window of several stall timeouts, not a sync
        assert fs.fp.bytes_down > down, "heartbeats flowed"
        assert fs.fp.accepted == 1 and fs.adapter.status().reconnects == 0
        assert broker.upstream() == broker.reliance_quote


async def test_auth_refused_refreshes_credentials_with_one_log_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Scenario 3: every handshake answered 401: tokens renewed each time, backoff between, no spin."""
    caplog.set_level(logging.INFO, logger="openalgo_proxy.brokers")
    async with (
        angel_under_test({"ticks_per_second": 5}, backoff_base=0.05, backoff_cap=0.1) as broker,
        system_behind_faults(broker) as fs,
        client(fs.system.url) as c,
    ):
        sim = _sim(broker.simulator)
        await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        await c.market_data(within=5)
        sim.reject_handshakes = True
        renewals_before = sim.logins + sim.refreshes
        caplog.clear()
        fs.fp.reset_all()
        window_start = time.monotonic()
        await wait_for(lambda: sim.handshake_rejections >= 8, within=10)
        elapsed = time.monotonic() - window_start
        refused = sim.handshake_rejections
        # no tight loop: the mean gap is at least a quarter of the mean full-jitter delay (~0.04 s)
        assert elapsed / refused >= 0.01, f"{refused} refusals in {elapsed:.2f} s"
        sim.reject_handshakes = False
        await wait_for(lambda: sim.connection_count == 1 and sim.subscribed() == RELIANCE_QUOTE, within=5)
        failures = [r for r in caplog.records if "connection failed (refresh_credentials)" in r.getMessage()]
        assert len(failures) == refused, "one warning per refused attempt"
        assert sim.logins + sim.refreshes - renewals_before == refused, "credentials renewed after each refusal"
        assert not any("HTTP 401" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)
        c.market.clear()
        await c.market_data(within=5)


@pytest.mark.parametrize("broker_name", BROKERS)
async def test_hundred_drops_in_a_row_follow_the_backoff_policy_without_growth(broker_name: str) -> None:
    """Scenario 4: 100 connections reset on accept; attempt times match the seeded full-jitter
    delays, tasks and threads stay flat, and the feed recovers when the broker returns."""
    seed, base, cap = 1234, 0.004, 0.06

    def seeded() -> Backoff:
        return Backoff(base, cap, rng=random.Random(seed))

    async with (
        broker_under_test(broker_name, quiet=False, stall_timeout=2.0) as broker,
        system_behind_faults(broker, backoff=seeded) as fs,
        client(fs.system.url) as c,
    ):
        fs.fp.faults.reset = True
        # a broker that connects eagerly (Kite) loses its live link here; its first delay is then
        # spent before the first refused attempt, so the refused attempts follow delays 1, 2, ...
        offset = fs.fp.reset_all()
        first = fs.fp.accepted
        await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        await wait_for(lambda: fs.fp.accepted >= first + 10, within=10)
        early = resources()
        await wait_for(lambda: fs.fp.accepted >= first + 101, within=20)
        late = resources()
        fs.fp.faults.reset = False
        times = fs.fp.accept_times[first : first + 101]
        # the policy, written out independently of Backoff: full jitter under a doubling, capped ceiling
        rng = random.Random(seed)
        policy = [rng.uniform(0.0, min(cap, base * 2.0**attempt)) for attempt in range(100 + offset)]
        delays = policy[offset:]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        for i, (delay, gap) in enumerate(zip(delays, gaps, strict=True)):
            assert delay - 0.003 <= gap <= delay + 0.3, f"attempt {i + 2}: gap {gap:.4f} s, policy {delay:.4f} s"
        # each gap is this attempt's drawn delay plus a few ms of connect overhead, not the ceiling
        assert statistics.median(g - d for g, d in zip(gaps, delays, strict=True)) < 0.012
        assert max(delays) <= cap
        assert late.tasks <= early.tasks + 3, (early, late)
        assert late.threads <= early.threads, (early, late)
        assert late.fds <= early.fds + 3, (early, late)
        await wait_for(lambda: broker.upstream() == broker.reliance_quote and broker.connections() == 1, within=5)
        msg = await c.market_data(within=5)
        assert msg["topic"] == "RELIANCE.NSE"
        assert fs.adapter.status().state is ConnectionState.CONNECTED


async def test_broker_link_cut_mid_frame_recovers() -> None:
    """Cut after N bytes: a frame torn in half is a dropped connection, never a corrupt tick."""
    async with (
        angel_under_test({"ticks_per_second": 20}) as broker,
        system_behind_faults(broker) as fs,
        client(fs.system.url) as c,
    ):
        await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 3})
        await c.market_data(within=5)
        fs.fp.faults.cut_after = 5000  # every connection dies after ~5 kB, mid-packet
        fs.fp.reset_all()
        await wait_for(lambda: fs.fp.accepted >= 4, within=10)
        fs.fp.faults.cut_after = None
        await wait_for(lambda: fs.adapter.status().state is ConnectionState.CONNECTED, within=5)
        c.market.clear()
        for _ in range(5):
            msg = await c.market_data(within=5)
            depth = msg["data"]["depth"]
            assert msg["topic"] == "SBIN.NSE" and len(depth["buy"]) == 5 and msg["data"]["ltp"] > 0
        assert fs.adapter.status().decode_errors == 0
        await asyncio.sleep(0)
