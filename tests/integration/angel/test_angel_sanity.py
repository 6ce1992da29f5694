"""Impossible broker packets through the real Angel path (simulator -> adapter -> feed -> proxy):
an unsolicited Depth-20 packet and packets with int64-max or negative values never reach a client,
are counted as decode errors, and the stream goes on."""

from __future__ import annotations

import time

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from tests.reliability.scenarios import angel_under_test
from tests.support import client, running_system, wait_for

INT64_MAX = 2**63 - 1


def _packets(token: str) -> list[bytes]:
    now = int(time.time() * 1000)
    levels = tuple(codec.Depth20Level(quantity=10, price=350_000 + i, orders=1) for i in range(20))
    depth20 = codec.Depth20Packet(mode=4, exchange_type=1, token=token, exchange_timestamp=now,
                                  packet_received_time=now, buy=levels, sell=levels)  # fmt: skip
    quote = {"mode": 2, "exchange_type": 1, "token": token, "sequence_number": 1, "exchange_timestamp": now}
    return [
        codec.encode_packet(depth20),
        codec.encode_packet(codec.MarketPacket(**quote, last_traded_price=INT64_MAX)),
        codec.encode_packet(codec.MarketPacket(**quote, last_traded_price=350_000, volume=-5)),
        codec.encode_packet(codec.MarketPacket(**quote, last_traded_price=-350_000)),
    ]


async def test_impossible_packets_are_dropped_counted_and_the_stream_goes_on() -> None:
    async with (
        angel_under_test({"ticks_per_second": 20}) as broker,
        running_system(adapter=broker.make_adapter(broker.ws_url)) as system,
        client(system.url) as c,
    ):
        sim = broker.simulator
        assert isinstance(sim, AngelSimulator)
        for mode in (1, 2, 3):
            reply = await c.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": mode})
            assert reply["status"] == "success"
        await c.market_data(within=5, where=lambda m: m["mode"] == 3)
        instrument = system.adapter.lookup("NSE", "TCS")
        assert instrument is not None
        before = system.feed.status().decode_errors
        assert isinstance(before, int)
        for data in _packets(instrument.token):
            await sim.send_malformed(data)
        seen = list(c.market)  # everything since the subscriptions, and a second more of live ticks
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            seen.append(await c.market_data(within=2))
        assert len(seen) >= 5
        for msg in seen:
            data = msg["data"]
            assert 0 < data["ltp"] < 1e8, msg
            assert data.get("volume", 0) >= 0, msg
        await wait_for(lambda: system.feed.status().decode_errors == before + 4, within=5)
