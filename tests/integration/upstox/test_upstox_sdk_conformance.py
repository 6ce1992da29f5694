"""Conformance with Upstox's official SDK (upstox-python-sdk, pinned in requirements/nodeps.txt).

1. The SDK's protobuf decoder reads every message our simulator sent to the values it meant.
2. The SDK's `MarketDataStreamerV3` follows our simulator's redirect with its bearer header,
   subscribes (JSON in a binary frame), changes mode and receives decoded messages.
3. Our decoder's output equals the SDK's decode of the same bytes, over Hypothesis-generated messages.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox.codec import FeedMerger
from openalgo_proxy.brokers.upstox.simulator import Meant, UpstoxSimulator
from openalgo_proxy.model import DepthLevel, Instrument, Mode, Tick
from tests.integration.upstox.conftest import until

upstox_client = pytest.importorskip("upstox_client")
from google.protobuf import json_format  # noqa: E402
from upstox_client.feeder import market_data_feeder_v3  # noqa: E402
from upstox_client.feeder.market_data_streamer_v3 import MarketDataStreamerV3  # noqa: E402
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def sdk_decode(data: bytes) -> dict[str, Any]:
    """Exactly what the SDK's streamer emits for a message."""
    streamer = object.__new__(MarketDataStreamerV3)
    streamer.protobufRoot = sdk
    decoded: dict[str, Any] = json_format.MessageToDict(streamer.decode_protobuf(data))
    return decoded


# ---------------------------------------------------------------------------------------------
# 1. the SDK reads the simulator's messages to the values meant


def check_ltpc(ltpc: dict[str, Any], tick: Tick) -> None:
    assert ltpc.get("ltp", 0.0) == tick.ltp
    assert int(ltpc.get("ltt", "0")) == tick.ltt  # int64 comes out of MessageToDict as a string
    assert int(ltpc.get("ltq", "0")) == tick.last_trade_quantity
    assert ltpc.get("cp", 0.0) == tick.close


def check_book(quotes: list[dict[str, Any]], bids: tuple[DepthLevel, ...], asks: tuple[DepthLevel, ...]) -> None:
    assert len(quotes) == max(len(bids), len(asks))
    for quote, bid, ask in zip(quotes, bids, asks, strict=False):
        assert (quote.get("bidP", 0.0), int(quote.get("bidQ", "0"))) == (bid.price, bid.quantity)
        assert (quote.get("askP", 0.0), int(quote.get("askQ", "0"))) == (ask.price, ask.quantity)


def check_feed(feed: dict[str, Any], meant: Meant) -> None:
    tick = meant.tick
    if meant.mode == codec.LTPC:
        assert set(feed) <= {"ltpc", "requestMode"}
        check_ltpc(feed["ltpc"], tick)
        return
    assert feed.get("requestMode") == ("full_d30" if meant.mode == codec.FULL_D30 else "full_d5")
    if meant.index:
        index = feed["fullFeed"]["indexFF"]
        check_ltpc(index["ltpc"], tick)
        day = next(c for c in index["marketOHLC"]["ohlc"] if c["interval"] == "1d")
        assert (day["open"], day["high"], day["low"]) == (tick.open, tick.high, tick.low)
        return
    market = feed["fullFeed"]["marketFF"]
    check_book(market["marketLevel"]["bidAskQuote"], meant.bids, meant.asks)
    assert market.get("tbq", 0.0) == tick.total_buy_quantity
    assert market.get("tsq", 0.0) == tick.total_sell_quantity
    if meant.book_only:
        assert "ltpc" not in market and "marketOHLC" not in market and "vtt" not in market
        return
    check_ltpc(market["ltpc"], tick)
    assert market.get("atp", 0.0) == tick.avg_trade_price
    assert int(market.get("vtt", "0")) == tick.volume
    assert market.get("oi", 0.0) == tick.oi
    day = next(c for c in market["marketOHLC"]["ohlc"] if c["interval"] == "1d")
    assert (day["open"], day["high"], day["low"], int(day["vol"])) == (tick.open, tick.high, tick.low, tick.volume)


async def test_the_sdk_reads_the_simulators_messages_to_the_values_meant(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20, "partial_every": 2})
    wanted = {
        h.instrument("NSE", "RELIANCE"): Mode.DEPTH,
        h.instrument("NSE", "TCS"): Mode.LTP,
        h.instrument("NSE_INDEX", "NIFTY"): Mode.QUOTE,
        h.instrument("BSE_INDEX", "SENSEX"): Mode.DEPTH,
        h.instrument("NSE", "INFY"): Mode.QUOTE,
    }
    await h.adapter.set_wanted(wanted)
    await h.adapter.set_wanted_depth({h.instrument("NSE", "INFY"): 30})
    await until(lambda: sum(1 for _, m in h.sim.meant if any(x.book_only for x in m.values())) >= 3, within=10)
    seen = {"initial_feed": 0, "live_feed": 0, "partial": 0, "d30": 0, "index": 0}
    for data, meant in list(h.sim.meant):
        decoded = sdk_decode(data)
        seen[decoded.get("type", "initial_feed")] += 1
        assert set(decoded["feeds"]) == set(meant)
        for key, m in meant.items():
            check_feed(decoded["feeds"][key], m)
            seen["partial"] += m.book_only
            seen["d30"] += m.mode == codec.FULL_D30
            seen["index"] += m.index
    assert all(seen.values()), seen
    # the first message on the connection is the market status, as Upstox sends it
    first = next(data for _, data in h.sim.history)
    status = sdk_decode(first)
    assert status["type"] == "market_info" and status["marketInfo"]["segmentStatus"]["NSE_EQ"] == "NORMAL_OPEN"


# ---------------------------------------------------------------------------------------------
# 2. the SDK's streamer against the simulator


class LocalWebSocketApp(market_data_feeder_v3.websocket.WebSocketApp):  # type: ignore[misc]
    """The SDK's WebSocketApp with Upstox's production URL swapped for the simulator's."""

    target = ""

    def __init__(self, url: str, *args: Any, **kwargs: Any) -> None:
        assert url == "wss://api.upstox.com/v3/feed/market-data-feed"
        super().__init__(self.target, *args, **kwargs)


async def test_the_sdk_streamer_follows_the_redirect_subscribes_and_receives(monkeypatch: pytest.MonkeyPatch) -> None:
    async with UpstoxSimulator(ticks_per_second=10, seed=3, access_token="TOKEN123") as sim:
        monkeypatch.setattr(LocalWebSocketApp, "target", sim.feed_url)
        monkeypatch.setattr(market_data_feeder_v3.websocket, "WebSocketApp", LocalWebSocketApp)
        conf = upstox_client.Configuration()
        conf.access_token = "TOKEN123"
        api = upstox_client.ApiClient(conf)
        streamer = MarketDataStreamerV3(api, ["NSE_EQ|INE002A01018"], "full")
        messages: list[dict[str, Any]] = []
        lock = threading.Lock()

        def on_message(message: dict[str, Any]) -> None:
            with lock:
                messages.append(message)

        def with_feeds(key: str, mode: str) -> int:
            with lock:
                # requestMode ltpc is proto3's default 0, which MessageToDict leaves out
                feeds = [m["feeds"][key] for m in messages if key in m.get("feeds", {})]
                return sum(1 for feed in feeds if feed.get("requestMode", "ltpc") == mode)

        streamer.on("message", on_message)
        streamer.auto_reconnect(False)
        streamer.connect()
        try:
            await until(lambda: with_feeds("NSE_EQ|INE002A01018", "full_d5") >= 2, within=15, what="SDK messages")
            assert sim.redirects == 1 and sim.authorization_headers[0] == "Bearer TOKEN123"
            assert [(r.method, r.keys, r.mode) for r in sim.requests] == [("sub", ["NSE_EQ|INE002A01018"], "full")]
            assert sim.text_frames == 0  # the SDK sends its requests as binary frames, like we do
            with lock:
                assert messages[0]["type"] == "market_info"
                kinds = [m.get("type", "initial_feed") for m in messages if "feeds" in m]
            assert kinds[0] == "initial_feed" and "live_feed" in kinds
            await asyncio.to_thread(streamer.subscribe, ["NSE_INDEX|Nifty 50"], "ltpc")
            await until(lambda: with_feeds("NSE_INDEX|Nifty 50", "ltpc") >= 1, within=10, what="the index")
            await asyncio.to_thread(streamer.change_mode, ["NSE_EQ|INE002A01018"], "full_d30")
            await until(lambda: with_feeds("NSE_EQ|INE002A01018", "full_d30") >= 1, within=10, what="full_d30")
            with lock:
                deep = next(m for m in messages if "full_d30" in str(m.get("feeds", {})))
            quotes = deep["feeds"]["NSE_EQ|INE002A01018"]["fullFeed"]["marketFF"]["marketLevel"]["bidAskQuote"]
            assert len(quotes) == 30
            assert sim.subscribed() == {"NSE_EQ|INE002A01018": "full_d30", "NSE_INDEX|Nifty 50": "ltpc"}
        finally:
            await asyncio.to_thread(streamer.disconnect)
            api.pool.close()  # the SDK's REST thread pool, which we never use
            api.pool.join()
        await until(lambda: not sim.connections(), within=5, what="the SDK to close")


# ---------------------------------------------------------------------------------------------
# 3. our decoder == the SDK's decode, over generated messages

doubles = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
counts = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e15)
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ltpcs = st.builds(lambda a, b, c, d: sdk.LTPC(ltp=a, ltt=b, ltq=c, cp=d), doubles, int64s, int64s, doubles)
quotes = st.builds(lambda a, b, c, d: sdk.Quote(bidQ=a, bidP=b, askQ=c, askP=d), int64s, doubles, int64s, doubles)
candles = st.builds(
    lambda i, o, h, lo, c, v: sdk.OHLC(interval=i, open=o, high=h, low=lo, close=c, vol=v, ts=v),
    st.sampled_from(["1d", "I1", "I30"]),
    doubles,
    doubles,
    doubles,
    doubles,
    int64s,
)


@st.composite
def market_feeds(draw: st.DrawFn) -> Any:
    market = sdk.MarketFullFeed(
        atp=draw(doubles), vtt=draw(int64s), oi=draw(counts), iv=draw(doubles), tbq=draw(counts), tsq=draw(counts)
    )
    if draw(st.booleans()):
        market.ltpc.CopyFrom(draw(ltpcs))
    if draw(st.booleans()):  # present, possibly empty: an empty book sent replaces the last one
        market.marketLevel.SetInParent()
        market.marketLevel.bidAskQuote.extend(draw(st.lists(quotes, max_size=30)))
    if draw(st.booleans()):
        market.marketOHLC.SetInParent()
        market.marketOHLC.ohlc.extend(draw(st.lists(candles, max_size=3)))
    if draw(st.booleans()):  # fields our tick does not carry: decoded and ignored
        market.optionGreeks.delta = draw(doubles)
        market.iep = draw(doubles)
        market.casEligible = True
        market.ltpc.iep.value = draw(doubles)
    return sdk.Feed(fullFeed=sdk.FullFeed(marketFF=market), requestMode=draw(st.sampled_from([1, 3])))


@st.composite
def index_feeds(draw: st.DrawFn) -> Any:
    index = sdk.IndexFullFeed()
    if draw(st.booleans()):
        index.ltpc.CopyFrom(draw(ltpcs))
    index.marketOHLC.ohlc.extend(draw(st.lists(candles, max_size=2)))
    return sdk.Feed(fullFeed=sdk.FullFeed(indexFF=index), requestMode=1)


feeds = st.one_of(
    st.builds(lambda p: sdk.Feed(ltpc=p, requestMode=0), ltpcs),
    market_feeds(),
    index_feeds(),
    st.builds(
        lambda p, v, oi: sdk.Feed(firstLevelWithGreeks=sdk.FirstLevelWithGreeks(ltpc=p, vtt=v, oi=oi), requestMode=2),
        ltpcs,
        int64s,
        counts,
    ),
)
KEY_NAMES = ["NSE_EQ|INE002A01018", "NSE_FO|52175", "NSE_INDEX|Nifty 50", "MCX_FO|450161"]


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    message = sdk.FeedResponse(type=draw(st.sampled_from([0, 1])), currentTs=draw(int64s))
    for key in draw(st.lists(st.sampled_from(KEY_NAMES), unique=True, max_size=4)):
        message.feeds[key].CopyFrom(draw(feeds))
    data: bytes = message.SerializeToString()
    return data


def expected_tick(key: str, feed: dict[str, Any], kind: str, current_ts: int) -> Tick:
    """Our tick as a reader of the SDK's dict maps it, for an instrument seen for the first time."""
    inner: dict[str, Any] = {}
    full = "fullFeed" in feed
    if full:
        inner = feed["fullFeed"].get("marketFF", feed["fullFeed"].get("indexFF", {}))
    elif "firstLevelWithGreeks" in feed:
        inner = feed["firstLevelWithGreeks"]
    ltpc = feed.get("ltpc") or inner.get("ltpc") or {}
    day: dict[str, float] = {}
    for candle in inner.get("marketOHLC", {}).get("ohlc", []):
        if candle.get("interval") == "1d":
            day.update({k: candle[k] for k in ("open", "high", "low") if candle.get(k)})
    rows = inner.get("marketLevel", {}).get("bidAskQuote", [])
    ltt = int(ltpc.get("ltt", "0"))
    return Tick(
        key,
        "X",
        Mode.DEPTH if full else Mode.LTP,
        ltpc.get("ltp", 0.0),
        ltt,
        (current_ts if kind == "live_feed" else 0) or ltt,
        day.get("open", 0.0),
        day.get("high", 0.0),
        day.get("low", 0.0),
        ltpc.get("cp", 0.0),
        int(inner.get("vtt", "0")),
        inner.get("atp", 0.0),
        int(ltpc.get("ltq", "0")),
        int(inner.get("tbq", 0.0)),
        int(inner.get("tsq", 0.0)),
        int(inner.get("oi", 0.0)),
        bids=tuple(DepthLevel(q.get("bidP", 0.0), int(q.get("bidQ", "0")), 0) for q in rows),
        asks=tuple(DepthLevel(q.get("askP", 0.0), int(q.get("askQ", "0")), 0) for q in rows),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_our_decoder_equals_the_sdks_decode(data: bytes) -> None:
    decoded = sdk_decode(data)
    kind = decoded.get("type", "initial_feed")
    current_ts = int(decoded.get("currentTs", "0"))
    ticks = FeedMerger().apply(codec.decode(data), lambda key: Instrument(key, "X", "0"))
    assert {t.symbol: t for t in ticks} == {
        key: expected_tick(key, feed, kind, current_ts) for key, feed in decoded.get("feeds", {}).items()
    }


class ReferenceMerge:
    """The merge rules applied to the SDK's dicts: a sub-message present replaces what it carries,
    a number replaces when non-zero (MessageToDict leaves zeros out), the `1d` candle gives the day."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def _ltpc(self, st: dict[str, Any], ltpc: dict[str, Any]) -> None:
        for name, field, cast in (("ltp", "ltp", float), ("ltt", "ltt", int), ("ltq", "ltq", int), ("cp", "cp", float)):
            value = cast(ltpc.get(field, 0))
            if value:
                st[name] = value

    def _numbers(self, st: dict[str, Any], inner: dict[str, Any], names: tuple[str, ...]) -> None:
        """A number sent (non-zero on the wire) replaces; doubles that count (oi, tbq, tsq) become ints."""
        for name in names:
            raw = inner.get(name, 0)
            if float(raw):
                st[name] = float(raw) if name == "atp" else int(raw) if name == "vtt" else int(float(raw))

    def _candles(self, st: dict[str, Any], inner: dict[str, Any]) -> None:
        for candle in inner["marketOHLC"].get("ohlc", []):
            if candle.get("interval") == "1d":
                st.update({k: candle[k] for k in ("open", "high", "low") if candle.get(k)})

    def apply(self, key: str, feed: dict[str, Any]) -> Tick:
        st = self.states.setdefault(
            key,
            dict.fromkeys(("ltp", "cp", "open", "high", "low", "atp"), 0.0)
            | dict.fromkeys(("ltt", "ltq", "vtt", "oi", "tbq", "tsq"), 0)
            | {"bids": (), "asks": (), "full": False},
        )
        if "ltpc" in feed:
            self._ltpc(st, feed["ltpc"])
        elif "marketFF" in feed.get("fullFeed", {}):
            market = feed["fullFeed"]["marketFF"]
            if "ltpc" in market:
                self._ltpc(st, market["ltpc"])
            if "marketLevel" in market:
                rows = market["marketLevel"].get("bidAskQuote", [])
                st["bids"] = tuple(DepthLevel(q.get("bidP", 0.0), int(q.get("bidQ", "0")), 0) for q in rows)
                st["asks"] = tuple(DepthLevel(q.get("askP", 0.0), int(q.get("askQ", "0")), 0) for q in rows)
            if "marketOHLC" in market:
                self._candles(st, market)
            self._numbers(st, market, ("atp", "vtt", "oi", "tbq", "tsq"))
            st["full"] = True
        elif "indexFF" in feed.get("fullFeed", {}):
            index = feed["fullFeed"]["indexFF"]
            if "ltpc" in index:
                self._ltpc(st, index["ltpc"])
            if "marketOHLC" in index:
                self._candles(st, index)
            st["full"] = True
        elif "firstLevelWithGreeks" in feed:
            greeks = feed["firstLevelWithGreeks"]
            if "ltpc" in greeks:
                self._ltpc(st, greeks["ltpc"])
            self._numbers(st, greeks, ("vtt", "oi"))
        return Tick(
            key,
            "X",
            Mode.DEPTH if st["full"] else Mode.LTP,
            st["ltp"],
            st["ltt"],
            0,
            st["open"],
            st["high"],
            st["low"],
            st["cp"],
            st["vtt"],
            st["atp"],
            st["ltq"],
            st["tbq"],
            st["tsq"],
            st["oi"],
            bids=st["bids"],
            asks=st["asks"],
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(responses(), min_size=2, max_size=6))
def test_our_merge_over_a_sequence_equals_the_rules_applied_to_the_sdks_decode(messages: list[bytes]) -> None:
    merger = FeedMerger()
    reference = ReferenceMerge()
    for data in messages:
        decoded = sdk_decode(data)
        stamp = int(decoded.get("currentTs", "0")) if decoded.get("type") == "live_feed" else 0
        ticks = merger.apply(codec.decode(data), lambda key: Instrument(key, "X", "0"))
        expected = {}
        for key, feed in decoded.get("feeds", {}).items():
            tick = reference.apply(key, feed)
            tick.exchange_time = stamp or tick.ltt
            expected[key] = tick
        assert {t.symbol: t for t in ticks} == expected
