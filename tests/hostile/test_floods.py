"""Findings 1 and 2: one connection flooding frames or amplifying work must be closed within a
second of crossing its budget, while a bystander's round trips stay near their no-attack baseline
and the proxy's memory returns near where it was. The attacker is its own process."""

from __future__ import annotations

import pytest

from tests.hostile.support import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_OVER_BUDGET,
    FRAME_ALLOWANCE,
    LIMITS,
    RSS_GROWTH,
    Attacker,
    judge_bystander,
    judge_closes,
    round_trips,
    rss,
)
from tests.support import System, client, running_system, wait_for

pytestmark = pytest.mark.timing

ATTACK_SECONDS = 2.5


async def _attack_while_measuring(system: System, scenario: str, *args: str, bystander_key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {bystander_key}"} if bystander_key else {}
    async with client(system.url, additional_headers=headers) as bystander:
        if bystander_key is None:  # a streaming bystander (the low-privilege one only pings)
            reply = await bystander.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success", reply
        baseline = await round_trips(bystander, count=30)
        memory_before = rss()
        async with Attacker(scenario, system.proxy.port, ATTACK_SECONDS, *args) as attacker:
            assert attacker.done is not None
            during = await round_trips(bystander, until=attacker.done)
            report = await attacker.report()
        # the proxy settles: only the bystander is left, its memory back near the baseline
        await wait_for(lambda: len(system.proxy.connections) == 1, within=10)
        growth = rss() - memory_before
        print(  # the figures docs/reliability.md quotes (pytest -s)
            f"\nFIGURES {scenario}: baseline {baseline.describe()}; during {during.describe()}; "
            f"{report.summary()}; RSS {growth / 2**20:+.1f} MiB"
        )
        expected = (CLOSE_OVER_BUDGET, CLOSE_MESSAGE_TOO_BIG) if scenario == "cont" else (CLOSE_OVER_BUDGET,)
        judge_closes(report, expected)
        judge_bystander(baseline, during)
        assert growth < RSS_GROWTH, f"proxy RSS grew {growth / 2**20:.0f} MiB during {report.summary()}"
        pong = await bystander.reply({"action": "ping"})
        assert pong["type"] == "pong"


@pytest.mark.parametrize("scenario", ["pong", "ping", "cont", "message"])
async def test_a_frame_flood_is_closed_4029_and_the_bystander_keeps_its_latency(scenario: str) -> None:
    """Every frame costs one token of the command bucket (control frames and continuations too)."""
    async with running_system(limits=LIMITS) as system:
        await _attack_while_measuring(
            system, scenario, "--allowance", str(FRAME_ALLOWANCE), "--refill", str(LIMITS["commands_per_second"])
        )


VIEWER_KEY = "viewer-key-for-the-hostile-suite"
BYSTANDER_KEY = "bystander-key-for-the-hostile-suite"  # another identity, same low-privilege role
VIEWER_AUTH = {
    "mode": "api_key",
    "api_keys": [VIEWER_KEY, BYSTANDER_KEY],
    "default_role": "viewer",
    "roles": {"viewer": {"exchanges": ["BSE"], "max_subscriptions": 3}},
}


async def test_batch_subscribe_amplification_by_a_viewer_is_closed_4029() -> None:
    """5,000 forbidden entries per message from a key capped at 3 subscriptions: every failed entry
    counts, so each message spends at least one unit of the error budget; past it, 4029."""
    async with running_system(limits=LIMITS, auth=VIEWER_AUTH) as system:
        await _attack_while_measuring(
            system,
            "batch",
            "--bearer",
            VIEWER_KEY,
            "--allowance",
            str(LIMITS["max_protocol_errors"]),
            bystander_key=BYSTANDER_KEY,
        )


async def test_the_attacker_and_bystander_baseline_agree_without_an_attack() -> None:
    """The measuring itself: two no-attack runs pass the bystander judgement against each other."""
    async with running_system(limits=LIMITS) as system, client(system.url) as bystander:
        first = await round_trips(bystander, count=30)
        second = await round_trips(bystander, count=30)
        judge_bystander(first, second)
