"""The Kite simulator speaks the protocol: raw WebSocket clients on loopback, no adapter involved."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from openalgo_proxy.brokers.market import UNIVERSE
from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import ErrorMessage, KiteMode, PacketKind
from openalgo_proxy.brokers.zerodha.instruments import KiteInstruments, parse_csv
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator

from .conftest import wait_for

pytestmark = pytest.mark.timeout(20)


def ws_url(sim: KiteSimulator, token: str = "sim_access_token", key: str = "sim_api_key") -> str:
    return f"{sim.url}?api_key={key}&access_token={token}"


async def next_packets(ws: ClientConnection) -> list[codec.KitePacket]:
    """The packets of the next tick frame (heartbeats skipped)."""
    async with asyncio.timeout(5):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes) and not codec.is_heartbeat(message):
                return codec.decode_frame(message)


async def next_text(ws: ClientConnection) -> codec.TextMessage:
    async with asyncio.timeout(5):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                return codec.parse_text(message)


@pytest.mark.parametrize(("key", "token"), [("sim_api_key", "wrong"), ("wrong", "sim_access_token"), ("", "")])
async def test_bad_credentials_get_403(sim: KiteSimulator, key: str, token: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(ws_url(sim, token, key))
    assert info.value.response.status_code == 403
    assert sim.rejections[403] == 1 and sim.connections_total == 0


async def test_fourth_connection_gets_429_and_expired_token_403(sim: KiteSimulator) -> None:
    conns = [await connect(ws_url(sim)) for _ in range(3)]
    try:
        with pytest.raises(InvalidStatus) as info:
            await connect(ws_url(sim))
        assert info.value.response.status_code == 429
        await conns[0].close()
        await wait_for(lambda: len(sim.connections) == 2)
        sim.expire_token("new_token")
        with pytest.raises(InvalidStatus) as expired:
            await connect(ws_url(sim))
        assert expired.value.response.status_code == 403
        conns[0] = await connect(ws_url(sim, "new_token"))
    finally:
        for ws in conns:
            await ws.close()


async def test_heartbeats_flow_without_subscriptions(sim: KiteSimulator) -> None:
    async with connect(ws_url(sim)) as ws, asyncio.timeout(2):
        assert await ws.recv() == codec.HEARTBEAT


async def test_modes_packet_kinds_unsubscribe_and_errors(sim: KiteSimulator) -> None:
    async with connect(ws_url(sim)) as ws:
        await ws.send(codec.encode_subscribe([738561, 256265]).decode())  # default mode: quote
        kinds = {p.instrument_token: p.kind for p in await next_packets(ws)}
        assert kinds == {738561: PacketKind.QUOTE, 256265: PacketKind.INDEX_QUOTE}
        await ws.send(codec.encode_mode(KiteMode.FULL, [738561, 256265]).decode())
        await wait_for(lambda: sim.subscribed() == {738561: KiteMode.FULL, 256265: KiteMode.FULL})
        full = {p.instrument_token: p for p in await next_packets(ws)}
        assert {t: p.kind for t, p in full.items()} == {738561: PacketKind.FULL, 256265: PacketKind.INDEX_FULL}
        rel = full[738561]
        assert rel.depth[0].price < rel.depth[5].price and all(d.quantity > 0 for d in rel.depth)
        await ws.send(codec.encode_mode(KiteMode.LTP, [738561]).decode())
        await ws.send(codec.encode_unsubscribe([256265]).decode())
        await wait_for(lambda: sim.subscribed() == {738561: KiteMode.LTP})
        packets = await next_packets(ws)
        while any(p.kind is not PacketKind.LTP for p in packets):  # frames sent before the change
            packets = await next_packets(ws)
        assert [(p.instrument_token, p.kind) for p in packets] == [(738561, PacketKind.LTP)]
        await ws.send("{not json")
        error = await next_text(ws)
        assert isinstance(error, ErrorMessage) and "Invalid message" in error.message
        assert sim.subscribed() == {738561: KiteMode.LTP}  # a bad request changes nothing


async def test_per_connection_instrument_cap() -> None:
    sim = KiteSimulator(max_per_connection=5, heartbeat_interval=0.1)
    await sim.start()
    try:
        tokens = [lst.kite_token for lst in UNIVERSE[:7]]
        async with connect(ws_url(sim)) as ws:
            await ws.send(codec.encode_subscribe(tokens).decode())
            error = await next_text(ws)
            assert isinstance(error, ErrorMessage) and "limit" in error.message.lower()
            await wait_for(lambda: len(sim.subscribed()) == 5)
            assert set(sim.subscribed()) == set(tokens[:5])
    finally:
        await sim.stop()


async def test_instruments_csv_names_every_listing_like_the_other_brokers(sim: KiteSimulator) -> None:
    async with aiohttp.ClientSession() as session, session.get(sim.instruments_url) as response:
        assert response.status == 200
        text = await response.text()
    master = KiteInstruments(parse_csv(text))
    assert len(master) == len(UNIVERSE)
    for lst in UNIVERSE:
        inst = master.lookup(lst.exchange, lst.symbol)
        assert inst is not None, (lst.exchange, lst.symbol)
        assert int(inst.token) == lst.kite_token and inst.lot_size == lst.lot_size
