"""Conformance: the official `openalgo` SDK's feed client works against the proxy unchanged."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import openalgo

from tests.support import running_system

API_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef"


def _drive_sdk(url: str) -> tuple[dict[int, list[dict[str, Any]]], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Runs in a worker thread: the SDK is synchronous and keeps its own WebSocket thread."""
    received: dict[int, list[dict[str, Any]]] = defaultdict(list)
    client = openalgo.api(api_key=API_KEY, host="http://127.0.0.1:9", ws_url=url)
    assert client.connect(), "the SDK did not see a successful auth reply"
    try:
        assert client.subscribe_ltp([{"exchange": "NSE", "symbol": "RELIANCE"}], on_data_received=received[1].append)
        assert client.subscribe_quote([{"exchange": "NSE", "symbol": "INFY"}], on_data_received=received[2].append)
        assert client.subscribe_depth([{"exchange": "NSE", "symbol": "SBIN"}], on_data_received=received[3].append)
        deadline = time.monotonic() + 10
        while not all(len(received[mode]) >= 2 for mode in (1, 2, 3)):
            assert time.monotonic() < deadline, f"SDK callbacks got { ({m: len(v) for m, v in received.items()}) }"
            time.sleep(0.05)
        return received, client.get_ltp(), client.get_quotes(), client.get_depth()
    finally:
        client.disconnect()


async def test_official_sdk_authenticates_subscribes_and_decodes_every_mode() -> None:
    async with running_system(auth={"mode": "api_key", "api_keys": [API_KEY]}, ticks_per_second=20) as system:
        received, ltp, quotes, depth = await asyncio.wait_for(asyncio.to_thread(_drive_sdk, system.url), 30)
    tick = received[1][-1]
    assert (tick["symbol"], tick["exchange"], tick["mode"]) == ("RELIANCE", "NSE", 1)
    assert tick["data"]["ltp"] > 0 and tick["data"]["ltt"] > 0
    quote = received[2][-1]["data"]
    for key in ("open", "high", "low", "close", "ltp", "volume", "change", "change_percent"):
        assert isinstance(quote[key], (int, float)), key
    assert quote["low"] <= quote["ltp"] <= quote["high"]
    book = received[3][-1]["data"]["depth"]
    assert len(book["buy"]) == 5 and len(book["sell"]) == 5
    assert book["buy"][0]["price"] < book["sell"][0]["price"]
    # the SDK's own caches, filled by its own parser
    assert ltp["ltp"]["NSE"]["RELIANCE"]["ltp"] > 0
    assert quotes["quote"]["NSE"]["INFY"]["close"] > 0
    assert depth["depth"]["NSE"]["SBIN"]["ltp"] > 0
