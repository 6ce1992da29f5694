"""Upstox Market Data Feed V3 codec: request frames out, protobuf `FeedResponse` in; pure, no I/O.

Requests are UTF-8 JSON sent as binary frames:
`{"guid":..,"method":"sub"|"change_mode"|"unsub","data":{"instrumentKeys":[..],"mode":..}}` (`mode`
omitted for `unsub`). Modes: `ltpc`, `full` (5 levels), `option_greeks`, `full_d30` (30 levels).

Responses are `FeedResponse` messages (schema in `feed_v3.proto`, generated module `feed_v3_pb2`):
`initial_feed` (the snapshot after a subscribe or mode change), `live_feed` (updates) and
`market_info` (segment status). A feed carries one of `ltpc`, `fullFeed` (`marketFF` for traded
instruments, `indexFF` for indices) or `firstLevelWithGreeks`.

`FeedMerger` keeps the last values of every instrument and merges each feed into them: a live
update may carry only what changed (a depth-only update comes without `ltpc`). Sub-messages replace
what they carry when present (`ltpc`, the book, a candle of the same interval); numbers replace when
non-zero (proto3 cannot tell an absent number from 0). Prices are double rupees (no divisor), times
epoch milliseconds; `cp` is the previous close; the day's open/high/low come from the `1d` candle;
Upstox sends no order counts per level and no circuit limits (0).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from google.protobuf.message import DecodeError

from openalgo_proxy.brokers.upstox import feed_v3_pb2 as pb
from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import DepthLevel, Instrument, Mode, Tick

# ---------------------------------------------------------------------------------------------
# requests

LTPC: Final = "ltpc"
FULL: Final = "full"
OPTION_GREEKS: Final = "option_greeks"
FULL_D30: Final = "full_d30"
MODES: Final = (LTPC, FULL, OPTION_GREEKS, FULL_D30)
SUBSCRIBE: Final = "sub"
CHANGE_MODE: Final = "change_mode"
UNSUBSCRIBE: Final = "unsub"
METHODS: Final = (SUBSCRIBE, CHANGE_MODE, UNSUBSCRIBE)
#: instrument keys per request frame (Upstox documents no limit; batches keep frames small)
KEYS_PER_REQUEST: Final = 100
D30_LEVELS: Final = 30
D5_LEVELS: Final = 5

#: our client mode -> the Upstox mode that carries it (LTP needs only ltpc; Quote and Depth need full)
UPSTREAM_MODE: Final[dict[Mode, str]] = {Mode.LTP: LTPC, Mode.QUOTE: FULL, Mode.DEPTH: FULL}

#: subscription caps per mode when one mode is in use ("individual") and when several are ("combined")
INDIVIDUAL_CAPS: Final[dict[str, int]] = {LTPC: 5000, OPTION_GREEKS: 3000, FULL: 2000, FULL_D30: 50}
COMBINED_CAPS: Final[dict[str, int]] = {LTPC: 2000, OPTION_GREEKS: 2000, FULL: 1500, FULL_D30: 50}


class UpstoxCodecError(ProxyError):
    """Bytes or text that are not a valid Upstox message."""


def request(method: str, keys: Sequence[str], mode: str | None = None, guid: str | None = None) -> bytes:
    """One request frame (send as a binary WebSocket frame)."""
    data: dict[str, object] = {"instrumentKeys": list(keys)}
    if mode is not None:
        data["mode"] = mode
    body = {"guid": guid or uuid.uuid4().hex, "method": method, "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def batched(method: str, keys: Sequence[str], mode: str | None = None) -> list[bytes]:
    return [request(method, keys[i : i + KEYS_PER_REQUEST], mode) for i in range(0, len(keys), KEYS_PER_REQUEST)]


def requests_for(sent: Mapping[str, str], wanted: Mapping[str, str]) -> list[bytes]:
    """The frames that turn the server's set `sent` (key -> mode) into `wanted`: `unsub` for keys no
    longer wanted, `change_mode` for keys whose mode changed, `sub` for new keys, per mode in order."""
    frames: list[bytes] = []
    gone = sorted(key for key in sent if key not in wanted)
    if gone:
        frames += batched(UNSUBSCRIBE, gone)
    changed: dict[str, list[str]] = {}
    added: dict[str, list[str]] = {}
    for key in sorted(wanted):
        mode = wanted[key]
        old = sent.get(key)
        if old is None:
            added.setdefault(mode, []).append(key)
        elif old != mode:
            changed.setdefault(mode, []).append(key)
    for mode in sorted(changed):
        frames += batched(CHANGE_MODE, changed[mode], mode)
    for mode in sorted(added):
        frames += batched(SUBSCRIBE, added[mode], mode)
    return frames


class Request:
    """A parsed client request (the simulator's side)."""

    __slots__ = ("guid", "keys", "method", "mode")

    def __init__(self, guid: str, method: str, keys: list[str], mode: str | None) -> None:
        self.guid = guid
        self.method = method
        self.keys = keys
        self.mode = mode


def decode_request(data: bytes | str) -> Request:
    """Parse and validate one request frame; UpstoxCodecError with the reason otherwise."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise UpstoxCodecError("request is not JSON") from None
    if not isinstance(obj, dict):
        raise UpstoxCodecError("request is not a JSON object")
    method = obj.get("method")
    if method not in METHODS:
        raise UpstoxCodecError(f"unknown method {method!r}")
    body = obj.get("data")
    if not isinstance(body, dict):
        raise UpstoxCodecError("request without a data object")
    keys = body.get("instrumentKeys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UpstoxCodecError("data.instrumentKeys must be a list of strings")
    mode = body.get("mode")
    if method != UNSUBSCRIBE and mode not in MODES:
        raise UpstoxCodecError(f"unknown mode {mode!r}")
    return Request(str(obj.get("guid", "")), method, keys, mode if isinstance(mode, str) else None)


def caps_fit(counts: Mapping[str, int]) -> bool:
    """Whether subscription counts per mode stay within Upstox's caps (combined when modes mix)."""
    in_use = [mode for mode, count in counts.items() if count > 0]
    caps = INDIVIDUAL_CAPS if len(in_use) <= 1 else COMBINED_CAPS
    return all(counts[mode] <= caps.get(mode, 0) for mode in in_use)


# ---------------------------------------------------------------------------------------------
# responses

FEED_RESPONSE = pb.FeedResponse
INITIAL_FEED: Final = int(pb.initial_feed)
LIVE_FEED: Final = int(pb.live_feed)
MARKET_INFO: Final = int(pb.market_info)
MARKET_STATUS_NAMES: Final[dict[int, str]] = {int(v): k for k, v in pb.MarketStatus.items()}


def decode(data: bytes) -> pb.FeedResponse:
    """One binary frame as a `FeedResponse` (unknown fields skipped); UpstoxCodecError if malformed."""
    try:
        return FEED_RESPONSE.FromString(data)
    except DecodeError as exc:
        raise UpstoxCodecError(f"not a FeedResponse: {exc}") from None


def segment_status(response: pb.FeedResponse) -> dict[str, str]:
    """A `market_info` message's segment -> status name (`NORMAL_OPEN`, ...)."""
    names = MARKET_STATUS_NAMES
    return {
        segment: names.get(int(status), str(status)) for segment, status in response.marketInfo.segmentStatus.items()
    }


class FeedState:
    """The merged last values of one instrument."""

    __slots__ = (
        "asks",
        "atp",
        "bids",
        "cp",
        "full",
        "high",
        "low",
        "ltp",
        "ltq",
        "ltt",
        "oi",
        "open",
        "tbq",
        "tsq",
        "vtt",
    )

    def __init__(self) -> None:
        self.ltp = 0.0
        self.ltt = 0
        self.ltq = 0
        self.cp = 0.0
        self.open = 0.0
        self.high = 0.0
        self.low = 0.0
        self.atp = 0.0
        self.vtt = 0
        self.oi = 0
        self.tbq = 0
        self.tsq = 0
        self.bids: tuple[DepthLevel, ...] = ()
        self.asks: tuple[DepthLevel, ...] = ()
        self.full = False  # a full feed was merged: the tick can fill Quote and Depth


def _merge_ltpc(st: FeedState, ltpc: pb.LTPC) -> None:
    ltp = ltpc.ltp
    if ltp:
        st.ltp = ltp
    ltt = ltpc.ltt
    if ltt:
        st.ltt = ltt
    ltq = ltpc.ltq
    if ltq:
        st.ltq = ltq
    cp = ltpc.cp
    if cp:
        st.cp = cp


def _merge_ohlc(st: FeedState, candles: Iterable[pb.OHLC]) -> None:
    for candle in candles:
        if candle.interval == "1d":
            value = candle.open
            if value:
                st.open = value
            value = candle.high
            if value:
                st.high = value
            value = candle.low
            if value:
                st.low = value


def _merge_market(st: FeedState, feed: pb.MarketFullFeed) -> None:
    """One `marketFF` (the hot path: kept flat). A count sent as a double (oi, tbq, tsq) that is not
    finite raises ValueError or OverflowError in int(), turned into UpstoxCodecError by the caller."""
    has = feed.HasField
    if has("ltpc"):
        _merge_ltpc(st, feed.ltpc)
    if has("marketLevel"):
        level = DepthLevel
        bids = []
        asks = []
        for row in feed.marketLevel.bidAskQuote:
            bids.append(level(row.bidP, row.bidQ, 0))
            asks.append(level(row.askP, row.askQ, 0))
        st.bids = tuple(bids)
        st.asks = tuple(asks)
    if has("marketOHLC"):
        _merge_ohlc(st, feed.marketOHLC.ohlc)
    value = feed.atp
    if value:
        st.atp = value
    count = feed.vtt
    if count:
        st.vtt = count
    value = feed.oi
    if value:
        st.oi = int(value)
    value = feed.tbq
    if value:
        st.tbq = int(value)
    value = feed.tsq
    if value:
        st.tsq = int(value)
    st.full = True


def _merge_index(st: FeedState, feed: pb.IndexFullFeed) -> None:
    if feed.HasField("ltpc"):
        _merge_ltpc(st, feed.ltpc)
    if feed.HasField("marketOHLC"):
        _merge_ohlc(st, feed.marketOHLC.ohlc)
    st.full = True


def _merge_greeks(st: FeedState, feed: pb.FirstLevelWithGreeks) -> None:
    if feed.HasField("ltpc"):
        _merge_ltpc(st, feed.ltpc)
    count = feed.vtt
    if count:
        st.vtt = count
    value = feed.oi
    if value:
        st.oi = int(value)


def merge(st: FeedState, feed: pb.Feed) -> None:
    """Merge one instrument's feed into its state (ValueError or OverflowError for a count that is
    not a finite number)."""
    which = feed.WhichOneof("FeedUnion")
    if which == "fullFeed":
        full = feed.fullFeed
        if full.WhichOneof("FullFeedUnion") == "marketFF":
            _merge_market(st, full.marketFF)
        elif full.HasField("indexFF"):
            _merge_index(st, full.indexFF)
    elif which == "ltpc":
        _merge_ltpc(st, feed.ltpc)
    elif which == "firstLevelWithGreeks":
        _merge_greeks(st, feed.firstLevelWithGreeks)


def to_tick(st: FeedState, symbol: str, exchange: str, exchange_time: int) -> Tick:
    """The merged state as our tick (Depth when a full feed was merged, else LTP)."""
    ltt = st.ltt
    return Tick(
        symbol,
        exchange,
        Mode.DEPTH if st.full else Mode.LTP,
        st.ltp,
        ltt,
        exchange_time or ltt,
        st.open,
        st.high,
        st.low,
        st.cp,
        st.vtt,
        st.atp,
        st.ltq,
        st.tbq,
        st.tsq,
        st.oi,
        0.0,
        0.0,
        st.bids,
        st.asks,
    )


class FeedMerger:
    """Per connection: the merged state of every instrument, and the ticks each response makes."""

    def __init__(self) -> None:
        self.states: dict[str, FeedState] = {}

    def forget(self, keys: Iterable[str]) -> None:
        """Drop the state of unsubscribed (or re-moded) instruments: their next feed starts afresh."""
        states = self.states
        for key in keys:
            states.pop(key, None)

    def clear(self) -> None:
        self.states.clear()

    def apply(self, response: pb.FeedResponse, instrument_of: Callable[[str], Instrument | None]) -> list[Tick]:
        """Merge every feed of `response` and return one tick per known instrument.

        The tick's `exchange_time` is the response's `currentTs` for a live update and the values'
        own `ltt` for the snapshot after a subscribe (old values must not look fresh).
        """
        states = self.states
        stamp = response.currentTs if response.type == LIVE_FEED else 0
        feeds = response.feeds
        out: list[Tick] = []
        try:
            for key in feeds:  # keys, then lookups: faster than the mapping's items() view
                instrument = instrument_of(key)
                if instrument is None:
                    continue
                st = states.get(key)
                if st is None:
                    st = states[key] = FeedState()
                merge(st, feeds[key])
                out.append(to_tick(st, instrument.symbol, instrument.exchange, stamp))
        except (ValueError, OverflowError) as exc:
            raise UpstoxCodecError(f"a count that is not a finite number: {exc}") from None
        return out


# ---------------------------------------------------------------------------------------------
# encoding (the simulator's side and the tests')


def ltpc_of(tick: Tick) -> pb.LTPC:
    return pb.LTPC(ltp=tick.ltp, ltt=tick.ltt, ltq=tick.last_trade_quantity, cp=tick.close)


def candles_of(tick: Tick) -> list[pb.OHLC]:
    """The `1d` candle (the session so far) and the current minute's `I1` candle of a tick."""
    minute = tick.ltt - tick.ltt % 60_000
    day = pb.OHLC(
        interval="1d", open=tick.open, high=tick.high, low=tick.low, close=tick.ltp, vol=tick.volume, ts=minute
    )
    now = pb.OHLC(interval="I1", open=tick.ltp, high=tick.ltp, low=tick.ltp, close=tick.ltp, vol=0, ts=minute)
    return [day, now]


def book_of(bids: Sequence[DepthLevel], asks: Sequence[DepthLevel]) -> list[pb.Quote]:
    rows = max(len(bids), len(asks))
    out = []
    for i in range(rows):
        bid = bids[i] if i < len(bids) else None
        ask = asks[i] if i < len(asks) else None
        out.append(
            pb.Quote(
                bidQ=bid.quantity if bid else 0,
                bidP=bid.price if bid else 0.0,
                askQ=ask.quantity if ask else 0,
                askP=ask.price if ask else 0.0,
            )
        )
    return out


def feed_of(
    tick: Tick,
    mode: str,
    *,
    index: bool = False,
    bids: Sequence[DepthLevel] | None = None,
    asks: Sequence[DepthLevel] | None = None,
    book_only: bool = False,
) -> pb.Feed:
    """The feed Upstox sends for `tick` in `mode`. `bids`/`asks` override the tick's book (30 levels
    for full_d30); `book_only` makes a partial live update: the book and its totals, no `ltpc`."""
    if mode == LTPC:
        return pb.Feed(ltpc=ltpc_of(tick), requestMode=pb.ltpc)
    request_mode = pb.full_d30 if mode == FULL_D30 else pb.full_d5
    if index:
        index_ff = pb.IndexFullFeed(ltpc=ltpc_of(tick), marketOHLC=pb.MarketOHLC(ohlc=candles_of(tick)))
        return pb.Feed(fullFeed=pb.FullFeed(indexFF=index_ff), requestMode=request_mode)
    level = pb.MarketLevel(
        bidAskQuote=book_of(tick.bids if bids is None else bids, tick.asks if asks is None else asks)
    )
    if book_only:
        market = pb.MarketFullFeed(
            marketLevel=level, tbq=float(tick.total_buy_quantity), tsq=float(tick.total_sell_quantity)
        )
    else:
        market = pb.MarketFullFeed(
            ltpc=ltpc_of(tick),
            marketLevel=level,
            marketOHLC=pb.MarketOHLC(ohlc=candles_of(tick)),
            atp=tick.avg_trade_price,
            vtt=tick.volume,
            oi=float(tick.oi),
            tbq=float(tick.total_buy_quantity),
            tsq=float(tick.total_sell_quantity),
        )
    return pb.Feed(fullFeed=pb.FullFeed(marketFF=market), requestMode=request_mode)


def response_bytes(kind: int, feeds: Mapping[str, pb.Feed], current_ts: int) -> bytes:
    """One `FeedResponse` of `kind` (INITIAL_FEED or LIVE_FEED) with `feeds`, serialised."""
    response = pb.FeedResponse(type=kind, currentTs=current_ts)  # type: ignore[arg-type]
    for key, feed in feeds.items():
        response.feeds[key].CopyFrom(feed)
    return response.SerializeToString()


def market_info_bytes(statuses: Mapping[str, str], current_ts: int) -> bytes:
    """The `market_info` message: segment -> status name (`NORMAL_OPEN`, ...)."""
    response = pb.FeedResponse(type=pb.market_info, currentTs=current_ts)
    for segment, status in statuses.items():
        response.marketInfo.segmentStatus[segment] = pb.MarketStatus.Value(status)  # type: ignore[assignment]
    return response.SerializeToString()
