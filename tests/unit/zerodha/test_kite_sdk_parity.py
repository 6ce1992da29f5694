"""Our decode of every fixture equals the official kiteconnect SDK's own parser (no socket, no reactor)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from openalgo_proxy.brokers.zerodha import codec

kiteconnect = pytest.importorskip("kiteconnect")

FIXTURES = Path(__file__).parents[2] / "fixtures" / "zerodha"
FRAMES = [
    "ltp_nse.bin",
    "quote_nfo.bin",
    "full_nse.bin",
    "full_cds.bin",
    "quote_mcx.bin",
    "index_quote_negative.bin",
    "index_full_bse.bin",
    "ltp_bcd.bin",
    "ltp_nco.bin",
    "multi.bin",
]


def sdk_view(tick: dict[str, object]) -> dict[str, object]:
    """An SDK tick with datetimes as unix seconds (the SDK converts in local time)."""
    return {k: (int(v.timestamp()) if isinstance(v, datetime) else v) for k, v in tick.items()}


def our_view(packet: codec.KitePacket) -> dict[str, object]:
    """Our packet in the SDK's field names and units."""
    tick = codec.to_tick(packet, "S", "E")
    out: dict[str, object] = {
        "tradable": not codec.is_index_token(packet.instrument_token),
        "mode": {1: "ltp", 2: "quote", 3: "full"}[int(tick.mode)],
        "instrument_token": packet.instrument_token,
        "last_price": tick.ltp,
    }
    if packet.kind is codec.PacketKind.LTP:
        return out
    out["ohlc"] = {"open": tick.open, "high": tick.high, "low": tick.low, "close": tick.close}
    out["change"] = (tick.ltp - tick.close) * 100 / tick.close if tick.close else 0
    if packet.kind is codec.PacketKind.INDEX_FULL:
        out["exchange_timestamp"] = packet.exchange_timestamp
    if packet.kind in (codec.PacketKind.INDEX_QUOTE, codec.PacketKind.INDEX_FULL):
        return out
    out.update(
        last_traded_quantity=tick.last_trade_quantity,
        average_traded_price=tick.avg_trade_price,
        volume_traded=tick.volume,
        total_buy_quantity=tick.total_buy_quantity,
        total_sell_quantity=tick.total_sell_quantity,
    )
    if packet.kind is codec.PacketKind.FULL:
        out.update(
            last_trade_time=packet.last_trade_time,
            oi=tick.oi,
            oi_day_high=packet.oi_day_high,
            oi_day_low=packet.oi_day_low,
            exchange_timestamp=packet.exchange_timestamp,
            depth={
                "buy": [{"quantity": d.quantity, "price": d.price, "orders": d.orders} for d in tick.bids],
                "sell": [{"quantity": d.quantity, "price": d.price, "orders": d.orders} for d in tick.asks],
            },
        )
    return out


@pytest.mark.parametrize("name", FRAMES)
def test_fixture_decodes_like_the_sdk(name: str) -> None:
    ticker = kiteconnect.KiteTicker("key", "token", root="ws://127.0.0.1:9", reconnect=False)
    frame = (FIXTURES / name).read_bytes()
    theirs = [sdk_view(t) for t in ticker._parse_binary(frame)]
    ours = [our_view(p) for p in codec.decode_frame(frame)]
    assert ours == theirs
