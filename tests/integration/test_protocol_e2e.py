"""The client protocol of DESIGN section 4, action by action, against a real feed and proxy."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support import System, client, running_system


async def test_authenticate_reply_and_request_id_echo(system: System) -> None:
    async with client(system.url) as c:
        reply = await c.reply({"action": "authenticate", "api_key": "anything", "request_id": "a1"})
        assert reply["type"] == "auth" and reply["status"] == "success" and reply["request_id"] == "a1"
        assert reply["broker"] == "simulator"
        assert reply["supported_features"] == {"ltp": True, "quote": True, "depth": True}
        assert isinstance(reply["user_id"], str)


async def test_subscribe_single_form_then_snapshot_for_a_second_client(system: System) -> None:
    async with client(system.url) as a, client(system.url) as b:
        reply = await a.reply(
            {"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "LTP", "request_id": 7}
        )
        assert reply == {
            "type": "subscription",
            "status": "success",
            "message": "subscribed to 1 of 1",
            "subscriptions": [
                {"symbol": "SBIN", "exchange": "NSE", "mode": 1, "topic": "SBIN.NSE", "status": "success"}
            ],
            "topic": "SBIN.NSE",
            "request_id": 7,
        }
        await a.market_data()
        # b subscribes to a topic the proxy already carries: the snapshot comes at once, right after the reply
        await b.send({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        assert (await b.recv())["type"] == "subscription"
        snapshot = await b.recv(within=1.0)
        assert snapshot["type"] == "market_data" and snapshot["topic"] == "SBIN.NSE" and snapshot["mode"] == 1


async def test_list_subscribe_modes_by_name_and_number_and_partial_status(system: System) -> None:
    async with client(system.url) as c:
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "INFY", "exchange": "NSE", "mode": "quote"},
                    {"symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 1},
                    {"symbol": "BANKNIFTY", "exchange": "NSE_INDEX"},
                    {"symbol": "NOSUCH", "exchange": "NSE"},
                    {"symbol": "RELIANCE", "exchange": "NOWHERE"},
                ],
            }
        )
        assert reply["status"] == "partial" and "topic" not in reply
        subs = reply["subscriptions"]
        assert [s["status"] for s in subs] == ["success", "success", "success", "error", "error"]
        assert [s["mode"] for s in subs[:3]] == [2, 1, 3]
        assert subs[3]["code"] == "SYMBOL_NOT_FOUND" and subs[4]["code"] == "SYMBOL_NOT_FOUND"
        seen = set()
        while len(seen) < 3:
            msg = await c.market_data()
            seen.add((msg["topic"], msg["mode"]))
        assert seen == {("INFY.NSE", 2), ("NIFTY.NSE_INDEX", 1), ("BANKNIFTY.NSE_INDEX", 3)}


async def test_all_errors_reply_all_failed_is_error(system: System) -> None:
    async with client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "NOSUCH", "exchange": "NSE"})
        assert reply["status"] == "error" and reply["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"


async def test_one_symbol_in_two_modes_is_two_independent_streams(system: System) -> None:
    async with client(system.url) as c:
        await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "TCS", "exchange": "NSE", "mode": 1},
                    {"symbol": "TCS", "exchange": "NSE", "mode": 3},
                ],
            }
        )
        by_mode: dict[int, dict[str, object]] = {}
        while len(by_mode) < 2:
            msg = await c.market_data()
            by_mode[msg["mode"]] = msg
        assert set(by_mode[1]["data"]) == {"symbol", "exchange", "ltp", "ltt", "timestamp"}  # type: ignore[arg-type]
        assert "depth" in by_mode[3]["data"]  # type: ignore[operator]
        await c.reply({"action": "unsubscribe", "symbol": "TCS", "exchange": "NSE", "mode": 3})
        listed = await c.reply({"action": "list_subscriptions"})
        assert listed["subscriptions"] == [{"symbol": "TCS", "exchange": "NSE", "mode": 1, "topic": "TCS.NSE"}]


async def test_unsubscribe_forms(system: System) -> None:
    async with client(system.url) as c:
        await c.reply(
            {"action": "subscribe", "symbols": [{"symbol": "ITC", "exchange": "NSE", "mode": m} for m in (1, 2, 3)]}
        )
        # no mode: every mode of that symbol
        reply = await c.reply({"action": "unsubscribe", "symbol": "ITC", "exchange": "NSE", "request_id": "u"})
        assert reply["type"] == "unsubscription" and reply["status"] == "success" and reply["request_id"] == "u"
        assert sorted(s["mode"] for s in reply["subscriptions"]) == [1, 2, 3]
        # what you do not hold
        reply = await c.reply({"action": "unsubscribe", "symbols": [{"symbol": "ITC", "exchange": "NSE"}]})
        assert reply["status"] == "error" and reply["subscriptions"][0]["code"] == "NOT_SUBSCRIBED"
        # mode at the top level
        await c.reply(
            {"action": "subscribe", "symbols": [{"symbol": "ITC", "exchange": "NSE", "mode": m} for m in (1, 2)]}
        )
        reply = await c.reply({"action": "unsubscribe", "mode": 2, "symbols": [{"symbol": "ITC", "exchange": "NSE"}]})
        assert [s["mode"] for s in reply["subscriptions"]] == [2]
        reply = await c.reply({"action": "unsubscribe_all"})
        assert reply["type"] == "unsubscription" and reply["status"] == "success"
        assert [(s["symbol"], s["mode"]) for s in reply["subscriptions"]] == [("ITC", 1)]
        assert (await c.reply({"action": "list_subscriptions"}))["subscriptions"] == []


async def test_no_ticks_after_unsubscribe_all(system: System) -> None:
    async with client(system.url) as c:
        await c.reply({"action": "subscribe", "symbol": "WIPRO", "exchange": "NSE", "mode": 1})
        await c.market_data()
        await c.reply({"action": "unsubscribe_all"})
        c.market.clear()
        pong = await c.reply({"action": "ping"})  # anything in flight before the reply arrived first
        assert pong["type"] == "pong"
        c.market.clear()
        with pytest.raises(TimeoutError):
            await c.market_data(within=0.6)


async def test_ping_pong_and_broker_info(system: System) -> None:
    async with client(system.url) as c:
        pong = await c.reply({"action": "ping", "_pingId": 99, "request_id": 1})
        assert (
            pong["type"] == "pong" and pong["status"] == "success" and pong["_pingId"] == 99 and pong["request_id"] == 1
        )
        assert isinstance(pong["server_timestamp"], int) and pong["server_timestamp"] > 1_600_000_000_000
        info = await c.reply({"action": "get_broker_info"})
        assert info["type"] == "broker_info" and info["status"] == "success" and info["broker"] == "simulator"
        assert info["adapter_status"] == "connected" and "NSE" in info["exchanges"]
        brokers = await c.reply({"action": "get_supported_brokers"})
        assert brokers["type"] == "supported_brokers" and brokers["brokers"] == ["simulator"]


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("this is not json", "INVALID_JSON"),
        ("[1, 2, 3]", "INVALID_JSON"),
        ("12", "INVALID_JSON"),
        ('{"action": "fly"}', "INVALID_ACTION"),
        ('{"no_action": true}', "INVALID_ACTION"),
        ('{"action": "subscribe", "exchange": "NSE"}', "INVALID_PARAMETERS"),
        ('{"action": "subscribe", "symbol": ["SBIN"], "exchange": "NSE"}', "INVALID_PARAMETERS"),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 7}', "INVALID_MODE"),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "fast"}', "INVALID_MODE"),
    ],
)
async def test_bad_input_gets_error_and_connection_stays_usable(system: System, request_text: str, code: str) -> None:
    async with client(system.url) as c:
        err = await c.reply(request_text)  # type: ignore[arg-type]
        assert err["type"] == "error" and err["status"] == "error" and err["code"] == code and err["message"]
        ok = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        assert ok["status"] == "success"
        await c.market_data()


async def test_error_echoes_request_id(system: System) -> None:
    async with client(system.url) as c:
        err = await c.reply({"action": "subscribe", "request_id": "r9"})
        assert err["code"] == "INVALID_PARAMETERS" and err["request_id"] == "r9"


async def test_binary_frame_is_an_error_not_a_disconnect(system: System) -> None:
    async with client(system.url) as c:
        await c.send(b"\x00\x01binary")
        err = await c.next_reply()
        assert err["code"] == "INVALID_JSON" and "binary" in err["message"]
        assert (await c.reply({"action": "ping"}))["type"] == "pong"


async def test_message_over_size_limit_closes_1009_without_affecting_others(system: System) -> None:
    async with client(system.url) as bystander:
        await bystander.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        async with websockets.connect(system.url, max_size=None) as ws:
            await ws.send(json.dumps({"action": "ping", "pad": "x" * 70_000}))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await bystander.market_data()
        assert (await bystander.reply({"action": "ping"}))["type"] == "pong"


async def test_subscription_limit_per_connection() -> None:
    async with running_system(proxy={"max_subscriptions_per_connection": 2}) as system, client(system.url) as c:
        reply = await c.reply(
            {
                "action": "subscribe",
                "mode": 1,
                "symbols": [{"symbol": s, "exchange": "NSE"} for s in ("SBIN", "INFY", "TCS")],
            }
        )
        assert reply["status"] == "partial"
        assert reply["subscriptions"][2]["code"] == "LIMIT_EXCEEDED"


async def test_api_key_mode_requires_authentication() -> None:
    async with running_system(auth={"mode": "api_key", "api_keys": ["k-123"]}) as system, client(system.url) as c:
        err = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE"})
        assert err["code"] == "NOT_AUTHENTICATED"
        err = await c.reply({"action": "authenticate", "api_key": "wrong"})
        assert err["type"] == "error" and err["code"] == "AUTHENTICATION_ERROR"
        ok = await c.reply({"action": "authenticate", "api_key": "k-123"})
        assert ok["type"] == "auth" and ok["status"] == "success"
        assert (await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE"}))["status"] == "success"


async def test_auth_deadline_closes_4401() -> None:
    auth = {"mode": "api_key", "api_keys": ["k"], "deadline": 0.5}
    async with running_system(auth=auth) as system, websockets.connect(system.url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_broker_unavailable_without_any_feed() -> None:
    async with running_system(with_feed=False) as system, client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE"})
        assert reply["subscriptions"][0]["code"] == "BROKER_UNAVAILABLE"


async def test_protocol_ping_is_sent_and_a_silent_client_is_closed() -> None:
    async with running_system(proxy={"ping_interval": 0.3, "ping_timeout": 0.5}) as system:
        # websockets answers pings automatically: this client stays connected while sending nothing
        async with websockets.connect(system.url, ping_interval=None) as ws:
            await asyncio.sleep(1.5)  # several ping intervals pass; the assertion is that we are still open
            await ws.send(json.dumps({"action": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"
        # a raw client that never answers pings is closed
        reader, writer = await asyncio.open_connection("127.0.0.1", system.proxy.port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        data = b""
        while b"\x88" not in data:  # read until the server's close frame
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            assert chunk, "connection ended without a close frame"
            data += chunk
        assert data[:1] == b"\x89"  # a ping frame came first
        close_at = data.index(b"\x88")
        code = int.from_bytes(data[close_at + 2 : close_at + 4], "big")
        assert code == 1011
        writer.close()
