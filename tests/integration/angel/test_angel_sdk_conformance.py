"""Conformance with Angel's official SDK client: smartapi-python 1.5.5 `SmartWebSocketV2`.

Its module is loaded by path from the installed distribution (importing the SmartApi package makes
a network call) and run from a temporary directory (it writes ./logs), with max_retry_attempt=0.
1. Its own `_parse_binary_data` decodes our packets to the values our codec produces.
2. It connects to our simulator with its own handshake, subscribes, and receives every mode.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import Depth20Packet, MarketPacket, decode_packet, to_tick
from openalgo_proxy.brokers.angel.login import AngelSession
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.market import UNIVERSE, SimulatedMarket

FIXTURES = Path(__file__).parents[2] / "fixtures" / "angel"


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    dist = importlib.metadata.distribution("smartapi-python")
    assert dist.version == "1.5.5"
    path = Path(str(dist.locate_file("SmartApi/smartWebSocketV2.py")))
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("angel_sdk_smartwebsocketv2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SmartWebSocketV2.input_request_dict = {}  # a class attribute shared by all instances
    return module


def _client(sdk: ModuleType, jwt: str = "jwt", api_key: str = "key", code: str = "code", feed: str = "feed") -> Any:
    return sdk.SmartWebSocketV2(jwt, api_key, code, feed, max_retry_attempt=0)


def _assert_same(sdk_data: dict[str, Any], packet: codec.AngelPacket) -> None:
    """The SDK's parse of the bytes equals our typed packet, field by field (wire units)."""
    assert sdk_data["subscription_mode"] == packet.mode
    assert sdk_data["exchange_type"] == packet.exchange_type
    assert sdk_data["token"] == packet.token
    if isinstance(packet, Depth20Packet):
        assert sdk_data["packet_received_time"] == packet.packet_received_time
        for side, levels in (("depth_20_buy_data", packet.buy), ("depth_20_sell_data", packet.sell)):
            assert [(d["quantity"], d["price"], d["num_of_orders"]) for d in sdk_data[side]] == [
                (lv.quantity, lv.price, lv.orders) for lv in levels
            ]
        return
    assert isinstance(packet, MarketPacket)
    fields = {
        "sequence_number": packet.sequence_number,
        "exchange_timestamp": packet.exchange_timestamp,
        "last_traded_price": packet.last_traded_price,
    }
    if packet.mode >= 2:
        fields |= {
            "last_traded_quantity": packet.last_traded_quantity,
            "average_traded_price": packet.average_traded_price,
            "volume_trade_for_the_day": packet.volume,
            "total_buy_quantity": packet.total_buy_quantity,
            "total_sell_quantity": packet.total_sell_quantity,
            "open_price_of_the_day": packet.open,
            "high_price_of_the_day": packet.high,
            "low_price_of_the_day": packet.low,
            "closed_price": packet.close,
        }
    if packet.mode == 3:
        fields |= {
            "last_traded_timestamp": packet.last_traded_timestamp,
            "open_interest": packet.open_interest,
            "upper_circuit_limit": packet.upper_circuit,
            "lower_circuit_limit": packet.lower_circuit,
            "52_week_high_price": packet.week_52_high,
            "52_week_low_price": packet.week_52_low,
        }
        buy = [(r.quantity, r.price, r.orders) for r in packet.best_five if r.flag == 1]
        sell = [(r.quantity, r.price, r.orders) for r in packet.best_five if r.flag == 0]
        assert [(d["quantity"], d["price"], d["no of orders"]) for d in sdk_data["best_5_buy_data"]] == buy
        assert [(d["quantity"], d["price"], d["no of orders"]) for d in sdk_data["best_5_sell_data"]] == sell
    for key, value in fields.items():
        assert sdk_data[key] == value, key


def _assert_tick_matches(sdk_data: dict[str, Any], packet: codec.AngelPacket) -> None:
    """Our rupee tick equals the SDK's wire values scaled by the documented divisor."""
    if isinstance(packet, Depth20Packet):
        return
    div = 1e7 if packet.exchange_type == 13 else 100.0
    tick = to_tick(packet, "X", "NSE")
    assert tick.ltp == sdk_data["last_traded_price"] / div
    if packet.mode >= 2:
        assert tick.close == sdk_data["closed_price"] / div
        assert tick.open == sdk_data["open_price_of_the_day"] / div
    if packet.mode == 3:
        assert [lv.price for lv in tick.bids] == [d["price"] / div for d in sdk_data["best_5_buy_data"]]


def test_sdk_parser_agrees_on_fixtures(sdk: ModuleType) -> None:
    client = _client(sdk)
    names = sorted(p.stem for p in FIXTURES.glob("*.bin"))
    assert len(names) >= 12
    for name in names:
        data = (FIXTURES / f"{name}.bin").read_bytes()
        parsed = client._parse_binary_data(data)
        packet = decode_packet(data)
        _assert_same(parsed, packet)
        _assert_tick_matches(parsed, packet)


def test_sdk_parser_agrees_on_simulator_packets(sdk: ModuleType) -> None:
    client = _client(sdk)
    market = SimulatedMarket(UNIVERSE, seed=9)
    sim = AngelSimulator(seed=9)
    for listing in UNIVERSE:
        key = next(k for k, v in sim.listings.items() if v is listing)
        tick = market.advance(listing.exchange, listing.symbol)
        for mode in (1, 2, 3, 4):
            if mode == 4 and key[0] != 1:
                continue
            data = sim._encode(key, listing, tick, mode)
            parsed = client._parse_binary_data(data)
            packet = decode_packet(data)
            _assert_same(parsed, packet)
            _assert_tick_matches(parsed, packet)


async def test_sdk_client_connects_and_receives_every_mode(sdk: ModuleType) -> None:
    async with AngelSimulator(ticks_per_second=0, seed=3) as sim:  # only the snapshot sent on subscribe
        tokens = await AngelSession(sim.credentials(), sim.api_url).tokens()
        client = _client(sdk, tokens.jwt_token, sim.api_key, sim.client_code, tokens.feed_token)
        client.ROOT_URI = sim.ws_url
        received: list[dict[str, Any]] = []
        errors: list[Any] = []
        done = threading.Event()

        def on_open(wsapp: Any) -> None:
            for mode in (1, 2, 3):
                client.subscribe(f"sdk{mode:07d}", mode, [{"exchangeType": 1, "tokens": ["2885"]}])
            client.subscribe("sdkdepth20", 4, [{"exchangeType": 1, "tokens": ["3045"]}])
            client.subscribe("sdkcds0001", 2, [{"exchangeType": 13, "tokens": ["1185"]}])

        def on_data(wsapp: Any, data: dict[str, Any]) -> None:
            received.append(data)
            if len(received) >= 5:
                done.set()

        def on_error(*args: Any) -> None:
            errors.append(args)
            done.set()

        client.on_open = on_open
        client.on_data = on_data
        client.on_error = on_error
        sdk_on_error = client._on_error

        def record_error(wsapp: Any, error: Any) -> None:
            errors.append(error)
            sdk_on_error(wsapp, error)

        client._on_error = record_error
        thread = asyncio.create_task(asyncio.to_thread(client.connect))
        try:
            async with asyncio.timeout(10):
                assert await asyncio.to_thread(done.wait, 10)
            errors_while_open = list(errors)
            subscribed_while_open = sim.subscribed()
        finally:
            # Its own close_connection() leaves run_forever in a 10 s select; ending the
            # connection from the server side makes it return at once (it reports the drop).
            sim.drop_connections()
            async with asyncio.timeout(10):
                await thread
        assert errors_while_open == []
        expected = {(1, "2885", 1), (1, "2885", 2), (1, "2885", 3), (1, "3045", 4), (13, "1185", 2)}
        assert subscribed_while_open == expected
        assert len(received) == 5
        for data in received:
            key = (data["exchange_type"], data["token"], data["subscription_mode"])
            packet = decode_packet(sim.last_sent[key])
            _assert_same(data, packet)
            _assert_tick_matches(data, packet)


async def test_sdk_client_is_refused_with_bad_tokens(sdk: ModuleType) -> None:
    async with AngelSimulator(ticks_per_second=0) as sim:
        client = _client(sdk, "eyJwrong", sim.api_key, sim.client_code, "wrong")
        client.ROOT_URI = sim.ws_url
        errors: list[Any] = []
        client.on_error = lambda *args: errors.append(args)
        async with asyncio.timeout(10):
            await asyncio.to_thread(client.connect)
        assert errors and sim.handshake_rejections == 1 and sim.connection_count == 0
