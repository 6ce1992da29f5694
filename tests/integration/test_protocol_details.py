"""Protocol details from a new user's first run: one depth rule however it is spelled, mode names."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import client, running_system

ENTRY = {"symbol": "SBIN", "exchange": "NSE"}


@pytest.mark.parametrize(
    "request_",
    [
        {"action": "subscribe", "mode": 3, "depth_level": 20, "symbols": [ENTRY]},
        {"action": "subscribe", "mode": 3, "symbols": [{**ENTRY, "depth_level": 20}]},
        {"action": "subscribe", "mode": 3, "symbols": [{**ENTRY, "depth": 20}]},
        {"action": "subscribe", "mode": 3, "depth": 20, **ENTRY},
    ],
    ids=["depth_level", "entry depth_level", "entry depth", "depth"],
)
async def test_a_depth_the_broker_cannot_give_is_refused_never_served_as_five(request_: dict[str, Any]) -> None:
    async with running_system() as system, client(system.url) as c:  # the simulated market: 5 levels only
        await c.reply(request_)
        refusal = await c.next_reply(within=5)
        assert (refusal["code"], refusal["symbol"], refusal["depth"]) == ("INVALID_DEPTH", "SBIN", 20), refusal
        assert c.market == [], "no 5-level book served in place of the asked depth"


async def test_full_and_snapquote_are_the_depth_mode() -> None:
    async with running_system() as system, client(system.url) as c:
        for name in ("full", "SnapQuote", "Depth"):
            reply = await c.reply({"action": "subscribe", "mode": name, **ENTRY})
            assert reply["subscriptions"][0]["mode"] == 3, reply
