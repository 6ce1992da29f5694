"""The feed-codec scenario: Angel SnapQuote packets decoded and normalized per second, on one core.

Runs when ``openalgo_proxy.brokers.angel.codec`` is in the tree (it lands in main from the angel
branch). Uses its public functions: ``encode_packet`` to build a realistic 379-byte SnapQuote,
``decode_packet`` (bytes -> MarketPacket) and ``to_tick`` (-> the normalized Tick); a third figure
adds ``payload.encode_data`` (the Tick as the mode-3 data JSON the feed publishes).
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from typing import Any

MODULE = "openalgo_proxy.brokers.angel.codec"
NEEDED = ("encode_packet", "decode_packet", "to_tick", "MarketPacket", "BestFiveRecord")


def available() -> bool:
    try:
        return importlib.util.find_spec(MODULE) is not None
    except ModuleNotFoundError:
        return False


def snapquote(codec: Any) -> bytes:
    five = tuple(
        codec.BestFiveRecord(flag=1 if k < 5 else 0, quantity=100 + k, price=250_000 + (k - 5) * 5, orders=3 + k)
        for k in range(10)
    )
    packet = codec.MarketPacket(
        mode=3,
        exchange_type=1,
        token="2885",
        sequence_number=123_456,
        exchange_timestamp=1_760_000_000_000,
        last_traded_price=250_025,
        last_traded_quantity=25,
        average_traded_price=249_980,
        volume=1_234_567,
        total_buy_quantity=98_765.0,
        total_sell_quantity=87_654.0,
        open=248_000,
        high=251_000,
        low=247_500,
        close=249_000,
        last_traded_timestamp=1_760_000_000,
        open_interest=0,
        best_five=five,
        upper_circuit=275_000,
        lower_circuit=225_000,
        week_52_high=300_000,
        week_52_low=200_000,
    )
    raw: bytes = codec.encode_packet(packet)
    return raw


def _rate(work: Callable[[], object], seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            work()
        count += 1000
    return count / (time.perf_counter() - started)


def run(seconds: float = 2.0) -> tuple[float, str]:
    """(decode+normalize packets per second, description); 0 and the reason when unavailable."""
    if not available():
        return 0.0, f"unavailable: {MODULE} is not in this tree (merge main once it lands)"
    codec = importlib.import_module(MODULE)
    missing = [name for name in NEEDED if not hasattr(codec, name)]
    if missing:
        return 0.0, f"unavailable: {MODULE} lacks {', '.join(missing)}"
    from openalgo_proxy.model import Mode
    from openalgo_proxy.payload import encode_data

    packet = snapquote(codec)
    decode, to_tick = codec.decode_packet, codec.to_tick
    decode_only = _rate(lambda: decode(packet), seconds / 2)
    normalized = _rate(lambda: to_tick(decode(packet), "SBIN-EQ", "NSE"), seconds)
    published = _rate(lambda: encode_data(to_tick(decode(packet), "SBIN-EQ", "NSE"), Mode.DEPTH), seconds / 2)
    return normalized, (
        f"decode_packet+to_tick on a {len(packet)}-byte SnapQuote; decode only {decode_only:,.0f}/s;"
        f" + mode-3 data JSON {published:,.0f}/s; target >= 250,000/s"
    )
