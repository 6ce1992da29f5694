"""The bus control plane: typed messages that feeds publish beside ticks, one encoder and one decoder each.

Topics are built and parsed in `topics.py`; this module owns the ``data`` part of the frame:

- ``#status|BROKER``: `FeedStatus`, every few seconds and when asked.
- ``#instruments|BROKER``: `InstrumentDirectory`, when asked.
- ``#reject|EXCHANGE|SYMBOL|MODE``: `Reject`, when a feed cannot carry a wanted topic.
- ``#orders|BROKER|ACCOUNT``: `OrderUpdate`, OpenAlgo's client-facing ``order_update`` object.

The JSON keeps the shapes docs/bus.md documents for feeds written in other languages. Decoders are
lenient where a third-party feed may differ (unknown keys are ignored, optional keys default) and
strict where a wrong type would mislead the proxy (a ``topics`` that is a string is an error).
New keys are added as optional fields, so an old decoder keeps reading a newer feed and the other
way round.
"""

from __future__ import annotations

import enum
from typing import Literal, TypeVar

import msgspec

from openalgo_proxy.errors import ControlMessageError, ErrorCode


class FeedState(enum.StrEnum):
    """Upstream state a feed reports in its status (`state`); `connected` means it can serve."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


class FeedStatus(msgspec.Struct, kw_only=True):
    """``#status|BROKER``. A proxy needs `broker` and `state`; the rest is what docs/bus.md asks every
    feed to send (shown in `/status` and the metrics) plus this implementation's additions, and
    defaults when a feed leaves it out. `state` stays a string on the wire so that a feed reporting
    a state this proxy does not know is shown, not dropped (see `FeedState`)."""

    broker: str
    state: str
    connections: int = 0
    subscriptions: int = 0
    topics: int = 0
    reconnects: int = 0
    decode_errors: int = 0
    last_tick_age: float = -1.0
    ticks: int = 0
    exchanges: list[str] = []
    instance: str = ""
    active_since: int = 0
    standby: bool = False
    time: int = 0

    @property
    def connected(self) -> bool:
        return self.state == FeedState.CONNECTED


class InstrumentInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What instrument search shows about one symbol (optional part of the directory)."""

    symbol: str
    name: str = ""
    instrument_type: str = ""
    tick_size: float = 0.0
    lot_size: int = 1


class InstrumentDirectory(msgspec.Struct, kw_only=True):
    """``#instruments|BROKER``: every symbol the feed can stream, by exchange, only the exchanges it
    serves (`exchanges` lists them; the proxy reads `symbols`). `instruments` (by exchange) is
    optional metadata for search: unset, it is not written at all, so the JSON of a feed without it
    is unchanged."""

    broker: str
    exchanges: list[str] = []
    symbols: dict[str, list[str]]
    instruments: dict[str, list[InstrumentInfo]] | msgspec.UnsetType = msgspec.UNSET


class Reject(msgspec.Struct):
    """``#reject|EXCHANGE|SYMBOL|MODE``: the feed will not carry this topic. `code` is an
    `ErrorCode` value (a string on the wire: a newer feed's code is passed on, not dropped)."""

    code: str
    message: str


OrderMode = Literal["live", "analyze"]


class OrderUpdate(msgspec.Struct, kw_only=True):
    """``#orders|BROKER|ACCOUNT``: OpenAlgo's ``order_update`` object, exactly these keys, relayed to
    clients unchanged. `order_status` is lower-case ("open", "complete", "rejected", "cancelled",
    "trigger pending" with a space)."""

    type: Literal["order_update"] = "order_update"
    user_id: str
    mode: OrderMode
    broker: str
    orderid: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    price: float
    trigger_price: float
    pricetype: str
    product: str
    order_status: str
    filled_quantity: int
    pending_quantity: int
    average_price: float
    rejection_reason: str


T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_status_decoder = msgspec.json.Decoder(FeedStatus)
_directory_decoder = msgspec.json.Decoder(InstrumentDirectory)
_reject_decoder = msgspec.json.Decoder(Reject)
_order_decoder = msgspec.json.Decoder(OrderUpdate)


def _decode(decoder: msgspec.json.Decoder[T], what: str, data: bytes) -> T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ControlMessageError(f"bad {what}: {exc}") from None


def encode_status(status: FeedStatus) -> bytes:
    return _encoder.encode(status)


def decode_status(data: bytes) -> FeedStatus:
    """ControlMessageError for anything that is not a feed status."""
    return _decode(_status_decoder, "feed status", data)


def encode_directory(directory: InstrumentDirectory) -> bytes:
    return _encoder.encode(directory)


def decode_directory(data: bytes) -> InstrumentDirectory:
    """ControlMessageError for anything that is not an instrument directory."""
    return _decode(_directory_decoder, "instrument directory", data)


def encode_reject(code: ErrorCode | str, message: str) -> bytes:
    return _encoder.encode(Reject(str(code), message))


def decode_reject(data: bytes) -> Reject:
    """ControlMessageError for anything that is not a reject."""
    return _decode(_reject_decoder, "reject", data)


def encode_order_update(update: OrderUpdate) -> bytes:
    return _encoder.encode(update)


def decode_order_update(data: bytes) -> OrderUpdate:
    """ControlMessageError for anything that is not an order update."""
    return _decode(_order_decoder, "order update", data)
