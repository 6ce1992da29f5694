"""The simulator's SmartStream protocol, spoken to with a plain WebSocket client (websockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.login import AngelSession
from openalgo_proxy.brokers.angel.simulator import AngelSimulator


@pytest.fixture
async def sim() -> AsyncIterator[AngelSimulator]:
    async with AngelSimulator(ticks_per_second=20, seed=5, max_pairs=10) as simulator:
        yield simulator


async def _headers(sim: AngelSimulator) -> dict[str, str]:
    tokens = await AngelSession(sim.credentials(), sim.api_url).tokens()
    return {
        "Authorization": tokens.jwt_token,
        "x-api-key": sim.api_key,
        "x-client-code": sim.client_code,
        "x-feed-token": tokens.feed_token,
    }


async def _recv_binary(ws: ClientConnection) -> bytes:
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            return message


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Authorization", "eyJbad", "Invalid Header - Invalid Auth token"),
        ("x-client-code", "OTHER", "Invalid Header - Invalid Client Code"),
        ("x-api-key", "bad", "Invalid Header - Invalid API Key"),
        ("x-feed-token", "bad", "Invalid Header - Invalid Feed Token"),
    ],
)
async def test_bad_handshake_headers_get_401(sim: AngelSimulator, header: str, value: str, reason: str) -> None:
    headers = await _headers(sim)
    headers[header] = value
    async with asyncio.timeout(5):
        with pytest.raises(InvalidStatus) as info:
            await connect(sim.ws_url, additional_headers=headers)
    assert info.value.response.status_code == 401
    assert info.value.response.headers["x-error-message"] == reason


async def test_query_parameters_are_accepted(sim: AngelSimulator) -> None:
    headers = await _headers(sim)
    url = f"{sim.ws_url}?clientCode={sim.client_code}&feedToken={headers['x-feed-token']}&apiKey={sim.api_key}"
    async with asyncio.timeout(5), connect(url) as ws:
        await ws.send("ping")
        assert await ws.recv() == "pong"


async def test_subscribe_every_mode_ping_errors_and_cap(sim: AngelSimulator) -> None:
    headers = await _headers(sim)
    async with asyncio.timeout(10), connect(sim.ws_url, additional_headers=headers) as ws:
        await ws.send("ping")
        assert await ws.recv() == "pong"
        await asyncio.wait_for(await ws.ping(), 2)  # protocol ping answered
        for mode, size in ((1, 51), (2, 123), (3, 379), (4, 443)):
            await ws.send(codec.subscribe_request(mode, {1: ["2885"]}, f"m{mode}"))
            while True:
                packet = codec.decode_packet(await _recv_binary(ws))
                if packet.mode == mode:
                    break
            assert packet.token == "2885" and packet.exchange_type == 1
            assert len(sim.last_sent[(1, "2885", mode)]) == size
        assert sim.subscriptions_per_connection() == [4]
        await ws.send(codec.subscribe_request(1, {1: ["2885"]}, "dup"))  # duplicates are ignored
        await ws.send("{not json")
        reply = codec.decode_text(await _next_text(ws))
        assert isinstance(reply, codec.ErrorReply) and reply.code == "E1001"
        too_many = [str(100000 + i) for i in range(7)]
        await ws.send(codec.subscribe_request(2, {2: too_many}, "cap0000001"))
        reply = codec.decode_text(await _next_text(ws))
        assert reply == codec.ErrorReply("cap0000001", "E1002", "Invalid Request. Subscription Limit Exceeded.")
        assert sim.subscriptions_per_connection() == [4]  # a failed request leaves the rest alone
        await ws.send(codec.subscribe_request(2, {2: too_many[:6]}, "fits"))
        await ws.send(codec.unsubscribe_request(4, {1: ["2885"]}))
        await ws.send(codec.unsubscribe_request(4, {1: ["99999"]}))  # not subscribed: ignored
        await ws.send("ping")
        assert await _next_text(ws) == "pong"
        assert sim.subscriptions_per_connection() == [9]


async def _next_text(ws: ClientConnection) -> str:
    while True:
        message = await ws.recv()
        if isinstance(message, str):
            return message


async def test_connection_cap_per_client_code(sim: AngelSimulator) -> None:
    headers = await _headers(sim)
    async with asyncio.timeout(10):
        conns = [await connect(sim.ws_url, additional_headers=headers) for _ in range(3)]
        try:
            with pytest.raises(InvalidStatus) as info:
                await connect(sim.ws_url, additional_headers=headers)
            assert info.value.response.status_code == 429
            assert sim.connection_count == 3
        finally:
            for ws in conns:
                await ws.close()


async def test_master_is_served(sim: AngelSimulator) -> None:
    async with asyncio.timeout(5), aiohttp.ClientSession() as http, http.get(sim.instruments_url) as response:
        rows = json.loads(await response.read())
    nifty = next(row for row in rows if row["token"] == "99926000")
    assert nifty["instrumenttype"] == "AMXIDX" and nifty["name"] == "NIFTY" and nifty["symbol"] == "Nifty 50"
    assert all(isinstance(value, str) for row in rows for value in row.values())
    assert any(row["symbol"] == "RELIANCE-EQ" and row["exch_seg"] == "NSE" for row in rows)


async def test_mute_answers_nothing(sim: AngelSimulator) -> None:
    headers = await _headers(sim)
    async with asyncio.timeout(10), connect(sim.ws_url, additional_headers=headers, ping_interval=None) as ws:
        await ws.send(codec.subscribe_request(1, {1: ["2885"]}))
        await _recv_binary(ws)
        sim.mute = True
        pong = await ws.ping()
        await ws.send("ping")
        texts: list[str] = []
        with pytest.raises(TimeoutError):  # packets already in flight may arrive; no pong may
            async with asyncio.timeout(0.3):
                while True:
                    message = await ws.recv()
                    if isinstance(message, str):
                        texts.append(message)
        assert texts == [] and not pong.done()
        sim.mute = False
        await ws.send("ping")
        assert await _next_text(ws) == "pong"
