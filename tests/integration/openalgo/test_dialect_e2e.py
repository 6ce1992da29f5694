"""OpenAlgo's consumers against the drop-in system (real processes): the SDK, the in-app client's acks,
order updates for their owner only, one-frame-per-symbol watchlists, origins from HOST_SERVER."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from pathlib import Path
from typing import Any

import openalgo
import pytest
import websockets

from openalgo_proxy.brokers.market import UNIVERSE
from tests.integration.openalgo.conftest import DropIn, drop_in
from tests.openalgo_support import order_update, publish_until
from tests.support import Client, client, wait_for

pytestmark = pytest.mark.slow


async def test_openalgo_consumers_end_to_end(tmp_path: Path) -> None:
    async with drop_in(tmp_path) as system:
        await _in_app_client_acks(system)
        await _order_updates_reach_their_owner_only(system)
        await _one_frame_per_symbol_watchlist(system)
        await _origins(system)
        await asyncio.wait_for(asyncio.to_thread(_sdk, system), 40)


async def _in_app_client_acks(system: DropIn) -> None:
    """OpenAlgo's Flask client: waits for type 'subscribe' with its request_id, reads successful[]."""
    async with client(system.url) as app:
        auth = await app.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        assert (auth["type"], auth["status"], auth["user_id"], auth["broker"]) == (
            "auth",
            "success",
            "alice",
            "zerodha",
        )
        for symbols in (
            [{"symbol": "SBIN", "exchange": "NSE"}],
            [{"symbol": "INFY", "exchange": "NSE"}, {"symbol": "TCS", "exchange": "NSE"}],
        ):
            rid = str(uuid.uuid4())
            ack = await app.reply({"action": "subscribe", "symbols": symbols, "mode": "LTP", "request_id": rid})
            assert (ack["type"], ack["request_id"], ack["status"]) == ("subscribe", rid, "success"), ack
            assert [s["status"] for s in ack["subscriptions"]] == ["success"] * len(symbols)
        single = await app.reply({"type": "subscribe", "symbol": "ITC", "exchange": "NSE", "request_id": "r-single"})
        assert single["type"] == "subscribe" and single["subscriptions"][0]["mode"] == 2  # default Quote
        tick = await app.market_data(10, lambda m: m["symbol"] == "SBIN")
        assert isinstance(tick["data"]["timestamp"], int) and tick["data"]["timestamp"] > 1_600_000_000_000
        assert abs(tick["data"]["timestamp"] - tick["data"]["ltt"]) < 86_400_000
        rid = str(uuid.uuid4())
        ack = await app.reply(
            {
                "action": "unsubscribe",
                "symbols": [{"symbol": "INFY", "exchange": "NSE"}, {"symbol": "XYZ", "exchange": "NSE"}],
                "request_id": rid,
            }
        )
        assert (ack["type"], ack["request_id"], ack["status"]) == ("unsubscribe", rid, "partial")
        assert [(s["symbol"], s["status"]) for s in ack["successful"]] == [("INFY", "success")]
        assert [s["symbol"] for s in ack["failed"]] == ["XYZ"]
        deep = await app.reply(
            {"action": "subscribe", "symbols": [{"symbol": "RELIANCE", "exchange": "NSE"}], "mode": 3, "depth": 10}
        )
        assert deep["type"] == "subscribe" and deep["subscriptions"][0]["code"] == "INVALID_DEPTH"
        again = await app.reply({"action": "get_broker_info"})  # the connection is still fine
        assert again["status"] == "success"


async def _order_updates_reach_their_owner_only(system: DropIn) -> None:
    async with client(system.url) as alice, client(system.url) as bob:
        await alice.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        await bob.reply({"action": "authenticate", "api_key": system.keys["bob"]})
        for app in (alice, bob):
            ack = await app.reply({"action": "subscribe_orders", "request_id": 7})
            assert ack == {
                "type": "subscribe_orders",
                "status": "success",
                "message": "Subscribed to order updates",
                "request_id": 7,
            }
        got: list[dict[str, Any]] = []
        bob_got: list[dict[str, Any]] = []

        async def drain(app: Client, into: list[dict[str, Any]]) -> None:
            while True:
                message = await app.recv(within=30)
                if message.get("type") == "order_update":
                    into.append(message)

        readers = [asyncio.ensure_future(drain(alice, got)), asyncio.ensure_future(drain(bob, bob_got))]
        try:
            fake = system.fake
            sends = await publish_until(
                fake, lambda: fake.publish("ZERODHA_alice_orders", order_update("alice")), lambda: bool(got)
            )
            assert sends >= 1 and got[0] == order_update("alice")
            # a barrier for bob: his own order arrives, so anything for alice would have arrived before it
            fake.publish("ZERODHA_bob_orders", order_update("bob", orderid="B1"))
            await wait_for(lambda: bool(bob_got), 10)
            assert [o["orderid"] for o in bob_got] == ["B1"] and all(o["user_id"] == "alice" for o in got)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        ack = await alice.reply({"action": "unsubscribe_orders"})
        assert ack["type"] == "unsubscribe_orders" and ack["status"] == "success"


async def _one_frame_per_symbol_watchlist(system: DropIn) -> None:
    """openalgo-chart and the Excel add-in: one subscribe frame per symbol, 300 at once (the simulated
    market has 60 instruments: 300 frames over its instruments and modes, repeats answer 'already
    subscribed'), then one unsubscribe frame per held topic."""
    listings = [(lst.exchange, lst.symbol) for lst in UNIVERSE]
    frames = [(listings[i % len(listings)], i // len(listings) % 3 + 1) for i in range(300)]
    held = sorted(set(frames))
    async with client(system.url) as app:
        await app.reply({"action": "authenticate", "api_key": system.keys["bob"]})
        for (exchange, symbol), mode in frames:
            await app.send({"action": "subscribe", "symbol": symbol, "exchange": exchange, "mode": mode})
        for _ in frames:
            ack = await app.next_reply(within=10)
            assert ack["type"] == "subscribe" and ack["status"] == "success", ack
        for (exchange, symbol), mode in held:
            await app.send({"action": "unsubscribe", "symbol": symbol, "exchange": exchange, "mode": mode})
        for _ in held:
            ack = await app.next_reply(within=10)
            assert ack["type"] == "unsubscribe" and ack["status"] == "success", ack
        listed = await app.reply({"action": "list_subscriptions"})
        assert listed["subscriptions"] == []


async def _origins(system: DropIn) -> None:
    async with client(system.url, origin=websockets.Origin("http://127.0.0.1:5000")) as page:  # HOST_SERVER
        reply = await page.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        assert reply["status"] == "success"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with client(system.url, origin=websockets.Origin("http://evil.example")):
            pass
    assert refused.value.response.status_code == 403


def _sdk(system: DropIn) -> None:
    """The official SDK (its verbose log prints the subscription results it parsed)."""
    received: list[dict[str, Any]] = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        sdk = openalgo.api(api_key=system.keys["alice"], host="http://127.0.0.1:9", ws_url=system.url, verbose=1)
        assert sdk.connect(), "the SDK did not authenticate with the key from OpenAlgo's database"
        try:
            assert sdk.subscribe_ltp([{"exchange": "NSE", "symbol": "RELIANCE"}], on_data_received=received.append)
            deadline = time.monotonic() + 15
            while len(received) < 2:
                assert time.monotonic() < deadline, "no ticks through the SDK"
                time.sleep(0.05)
        finally:
            sdk.disconnect()
    log = out.getvalue()
    assert "NSE:RELIANCE | Mode: LTP | Status: success" in log, log
    tick = received[-1]
    assert isinstance(tick["data"]["timestamp"], int)
    assert sdk.get_ltp()["ltp"]["NSE"]["RELIANCE"]["ltp"] > 0
