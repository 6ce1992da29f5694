"""Typed ticks and replies of the client protocol (DESIGN sections 4 and 5), decoded with msgspec.

Pure: text in, typed objects out. A tick carries the `data` keys of its mode (payload.py) plus the
envelope's `mode`, `broker`, `seq` and `snapshot` (a replayed last value, not a new tick).
"""

from __future__ import annotations

from typing import Any

import msgspec

from openalgo_proxy.errors import CodecError
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import Depth

ENVELOPE_FIELDS = frozenset({"mode", "broker", "seq", "snapshot"})


class LtpTick(msgspec.Struct, kw_only=True, gc=False):
    """Mode 1: last traded price. `ltt` is epoch ms; `timestamp` ISO-8601 UTC exchange time."""

    symbol: str
    exchange: str
    ltp: float
    ltt: int
    timestamp: str
    mode: Mode = Mode.LTP
    broker: str = ""
    seq: int = 0
    snapshot: bool = False  # a replayed last value (its times say how old); False for a live tick

    @property
    def name(self) -> str:
        """The instrument as ``EXCHANGE:SYMBOL``."""
        return f"{self.exchange}:{self.symbol}"

    @property
    def stream(self) -> tuple[str, str, Mode]:
        """(exchange, symbol, mode): one independent stream of the proxy."""
        return (self.exchange, self.symbol, self.mode)


class QuoteTick(LtpTick, kw_only=True, gc=False):
    """Mode 2: LTP plus OHLC (close = previous session close), change, volume and totals."""

    mode: Mode = Mode.QUOTE
    open: float
    high: float
    low: float
    close: float
    change: float
    change_percent: float
    volume: int
    avg_trade_price: float
    last_trade_quantity: int
    total_buy_quantity: int
    total_sell_quantity: int
    oi: int


class DepthTick(QuoteTick, kw_only=True, gc=False):
    """Mode 3: Quote plus five levels of depth per side (best first) and circuit limits."""

    mode: Mode = Mode.DEPTH
    depth: Depth
    upper_circuit: float
    lower_circuit: float


Tick = LtpTick | QuoteTick | DepthTick
TICK_TYPES: dict[Mode, type[LtpTick]] = {Mode.LTP: LtpTick, Mode.QUOTE: QuoteTick, Mode.DEPTH: DepthTick}


class SubscriptionResult(msgspec.Struct, gc=False):
    """One entry of a subscription / unsubscription reply."""

    symbol: str
    exchange: str
    mode: int = 0
    topic: str = ""
    status: str = "success"
    code: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "success"


class Reply(msgspec.Struct, gc=False):
    """Any message that is not market data: a reply, an error or a notice. `body` is the whole object."""

    type: str
    request_id: str | None
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))

    @property
    def code(self) -> str:
        return str(self.body.get("code", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))

    def results(self) -> list[SubscriptionResult]:
        entries = self.body.get("subscriptions") or []
        return msgspec.convert(entries, list[SubscriptionResult])


class _Envelope(msgspec.Struct, gc=False):
    type: str = ""
    request_id: Any = None
    mode: int = 0
    broker: str = ""
    seq: int = 0
    snapshot: bool = False
    data: msgspec.Raw = msgspec.Raw(b"null")


_envelope = msgspec.json.Decoder(_Envelope)
_tick_decoders = {mode: msgspec.json.Decoder(kind) for mode, kind in TICK_TYPES.items()}
_any = msgspec.json.Decoder()


class ProtocolViolation(CodecError):
    """A message from the server that does not follow the protocol."""


def decode(message: str | bytes) -> Tick | Reply:
    """One server message as a typed tick or a Reply; ProtocolViolation if it is malformed."""
    try:
        envelope = _envelope.decode(message)
        if envelope.type == "market_data":
            decoder = _tick_decoders.get(Mode(envelope.mode)) if envelope.mode in (1, 2, 3) else None
            if decoder is None:
                raise ProtocolViolation(f"market_data with invalid mode {envelope.mode!r}")
            tick = decoder.decode(envelope.data)
            tick.broker = envelope.broker
            tick.seq = envelope.seq
            tick.snapshot = envelope.snapshot
            return tick
        body = _any.decode(message)
    except msgspec.DecodeError as exc:
        raise ProtocolViolation(f"malformed message from server: {exc}") from exc
    if not isinstance(body, dict) or not envelope.type:
        raise ProtocolViolation("server message without a type")
    request_id = envelope.request_id
    return Reply(envelope.type, None if request_id is None else str(request_id), body)
