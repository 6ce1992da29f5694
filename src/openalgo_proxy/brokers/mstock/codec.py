"""mStock Type B wire codec: Angel's SmartStream packets with mStock's differences (pure, no I/O).

Differences from Angel, as the official `mstock-tradingapi-b` parser reads the wire:
- the exchange timestamp (byte 35) and the last trade time (byte 123) count **seconds since
  1980-01-01 UTC**, not epoch milliseconds and epoch seconds;
- the best-five block is five buy records then five sell records **by position**; the flags are not
  consulted;
- a frame may carry several packets behind a header `uint16 count, uint16 packet size`
  (little-endian like the packets; a big-endian header is accepted too), or one bare packet.
Prices are paise on every segment mStock streams here (NSE, BSE and their derivatives).
"""

from __future__ import annotations

import struct

from openalgo_proxy.brokers.angel import codec as angel
from openalgo_proxy.brokers.angel.codec import AngelCodecError, BestFiveRecord, MarketPacket

EPOCH_1980 = 315_532_800  # 1980-01-01T00:00:00Z in Unix seconds
SIZES = frozenset({angel.LTP_SIZE, angel.QUOTE_SIZE, angel.SNAP_QUOTE_SIZE})
_HEADER = struct.Struct("<HH")
_HEADER_BE = struct.Struct(">HH")


def split_frame(frame: bytes) -> list[bytes]:
    """The packets of one binary frame; AngelCodecError if it is neither a packet nor a framed batch."""
    if len(frame) in SIZES and 1 <= frame[0] <= 3:
        return [frame]
    for header in (_HEADER, _HEADER_BE):
        if len(frame) < header.size:
            break
        count, size = header.unpack_from(frame)
        if count and size in SIZES and header.size + count * size == len(frame):
            return [frame[header.size + i * size : header.size + (i + 1) * size] for i in range(count)]
    raise AngelCodecError(f"frame of {len(frame)} bytes is neither a packet nor a counted batch of packets")


def from_wire(packet: MarketPacket) -> MarketPacket:
    """mStock's units -> Angel's (epoch ms exchange time, epoch s trade time, sides by position)."""
    if packet.exchange_timestamp:
        packet.exchange_timestamp = (packet.exchange_timestamp + EPOCH_1980) * 1000
    if packet.last_traded_timestamp:
        packet.last_traded_timestamp += EPOCH_1980
    if packet.best_five:
        packet.best_five = tuple(
            BestFiveRecord(angel.BUY_FLAG if i < 5 else angel.SELL_FLAG, r.quantity, r.price, r.orders)
            for i, r in enumerate(packet.best_five)
        )
    return packet


def decode_frame(frame: bytes) -> list[MarketPacket]:
    out = []
    for raw in split_frame(frame):
        packet = angel.decode_packet(raw)
        if not isinstance(packet, MarketPacket):
            raise AngelCodecError("mStock streams no Depth-20 packets")
        out.append(from_wire(packet))
    return out


def to_wire(packet: MarketPacket) -> MarketPacket:
    """Simulator side: Angel-unit packet (epoch ms, epoch s) -> mStock's seconds since 1980."""
    if packet.exchange_timestamp:
        packet.exchange_timestamp = max(0, packet.exchange_timestamp // 1000 - EPOCH_1980)
    if packet.last_traded_timestamp:
        packet.last_traded_timestamp = max(0, packet.last_traded_timestamp - EPOCH_1980)
    return packet


def encode_frame(packets: list[bytes]) -> bytes:
    """One packet alone, or several of one size behind the count/size header."""
    if len(packets) == 1:
        return packets[0]
    sizes = {len(p) for p in packets}
    if len(sizes) != 1:
        raise AngelCodecError("a batched frame carries packets of one size")
    return _HEADER.pack(len(packets), sizes.pop()) + b"".join(packets)
