"""The Upstox codec: request frames, the caps, decoding, and the merge of partial live updates."""

from __future__ import annotations

import json

import pytest

from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox import feed_v3_pb2 as pb
from openalgo_proxy.brokers.upstox.codec import FeedMerger, UpstoxCodecError
from openalgo_proxy.model import DepthLevel, Instrument, Mode, Tick

RELIANCE = Instrument("RELIANCE", "NSE", "2885", 0.05, 1, "RELIANCE")
NIFTY = Instrument("NIFTY", "NSE_INDEX", "26000")
KEYS = {"NSE_EQ|INE002A01018": RELIANCE, "NSE_INDEX|Nifty 50": NIFTY}
REL = "NSE_EQ|INE002A01018"
IDX = "NSE_INDEX|Nifty 50"


def frames(sent: dict[str, str], wanted: dict[str, str]) -> list[dict[str, object]]:
    return [json.loads(frame) for frame in codec.requests_for(sent, wanted)]


def test_requests_subscribe_change_mode_and_unsubscribe_without_resubscribing() -> None:
    out = frames({"A": "ltpc", "B": "full", "C": "ltpc"}, {"A": "full", "B": "full", "D": "ltpc"})
    assert [(f["method"], f["data"]) for f in out] == [
        ("unsub", {"instrumentKeys": ["C"]}),
        ("change_mode", {"instrumentKeys": ["A"], "mode": "full"}),
        ("sub", {"instrumentKeys": ["D"], "mode": "ltpc"}),
    ]
    assert all(isinstance(f["guid"], str) and f["guid"] for f in out)
    assert codec.requests_for({"A": "ltpc"}, {"A": "ltpc"}) == []


def test_requests_are_batched_and_bytes() -> None:
    wanted = {f"NSE_FO|{i}": "ltpc" for i in range(250)}
    out = codec.requests_for({}, wanted)
    assert all(isinstance(frame, bytes) for frame in out)
    sizes = [len(json.loads(frame)["data"]["instrumentKeys"]) for frame in out]
    assert sizes == [100, 100, 50]


def test_decode_request_validates() -> None:
    req = codec.decode_request(codec.request("sub", ["NSE_EQ|X"], "full_d30", guid="g1"))
    assert (req.guid, req.method, req.keys, req.mode) == ("g1", "sub", ["NSE_EQ|X"], "full_d30")
    assert codec.decode_request(codec.request("unsub", ["K"])).mode is None
    for bad in (b"nope", b"[]", b'{"method":"subscribe"}', b'{"method":"sub","data":{"instrumentKeys":[1]}}'):
        with pytest.raises(UpstoxCodecError):
            codec.decode_request(bad)
    with pytest.raises(UpstoxCodecError, match="mode"):
        codec.decode_request(b'{"method":"sub","data":{"instrumentKeys":["K"],"mode":"depth"}}')


def test_caps_individual_and_combined() -> None:
    assert codec.caps_fit({"ltpc": 5000})
    assert not codec.caps_fit({"ltpc": 5001})
    assert codec.caps_fit({"full": 2000})
    assert not codec.caps_fit({"full": 2001})
    assert codec.caps_fit({"ltpc": 2000, "full": 1500})
    assert not codec.caps_fit({"ltpc": 2001, "full": 1})  # mixing modes brings the combined caps
    assert not codec.caps_fit({"ltpc": 1, "full": 1501})
    assert codec.caps_fit({"full_d30": 50, "full": 10})
    assert not codec.caps_fit({"full_d30": 51})
    assert codec.caps_fit({"ltpc": 0, "full": 2000})  # a mode with no subscriptions is not in use


def market_feed(**overrides: object) -> pb.Feed:
    market = pb.MarketFullFeed(
        ltpc=pb.LTPC(ltp=1485.5, ltt=1_710_909_637_000, ltq=10, cp=1480.25),
        marketLevel=pb.MarketLevel(
            bidAskQuote=[
                pb.Quote(bidQ=100 + i, bidP=1485.0 - i / 20, askQ=200 + i, askP=1485.5 + i / 20) for i in range(5)
            ]
        ),
        marketOHLC=pb.MarketOHLC(
            ohlc=[
                pb.OHLC(interval="1d", open=1478.0, high=1490.0, low=1470.5, close=1485.5, vol=99, ts=1),
                pb.OHLC(interval="I1", open=1485.0, high=1486.0, low=1484.0, close=1485.5, vol=9, ts=2),
            ]
        ),
        atp=1482.3,
        vtt=123_456,
        oi=7500.0,
        tbq=50_000.0,
        tsq=60_000.0,
    )
    for name, value in overrides.items():
        if value is None:
            market.ClearField(name)
        else:
            setattr(market, name, value)
    return pb.Feed(fullFeed=pb.FullFeed(marketFF=market), requestMode=pb.full_d5)


def response(kind: int, feeds: dict[str, pb.Feed], ts: int = 1_710_909_638_000) -> pb.FeedResponse:
    return codec.decode(codec.response_bytes(kind, feeds, ts))


def test_full_feed_maps_every_field() -> None:
    merger = FeedMerger()
    (tick,) = merger.apply(response(codec.LIVE_FEED, {REL: market_feed()}), KEYS.get)
    assert tick == Tick(
        "RELIANCE",
        "NSE",
        Mode.DEPTH,
        1485.5,
        1_710_909_637_000,
        1_710_909_638_000,
        1478.0,
        1490.0,
        1470.5,
        1480.25,  # cp: the previous close
        123_456,
        1482.3,
        10,
        50_000,
        60_000,
        7500,
        0.0,
        0.0,
        tuple(DepthLevel(1485.0 - i / 20, 100 + i, 0) for i in range(5)),
        tuple(DepthLevel(1485.5 + i / 20, 200 + i, 0) for i in range(5)),
    )


def test_snapshot_is_stamped_with_its_own_trade_time() -> None:
    (tick,) = FeedMerger().apply(response(codec.INITIAL_FEED, {REL: market_feed()}), KEYS.get)
    assert tick.exchange_time == tick.ltt == 1_710_909_637_000


def test_depth_only_update_keeps_the_last_trade() -> None:
    merger = FeedMerger()
    merger.apply(response(codec.INITIAL_FEED, {REL: market_feed()}), KEYS.get)
    book = pb.MarketLevel(bidAskQuote=[pb.Quote(bidQ=1, bidP=1486.0, askQ=2, askP=1486.5)] * 5)
    partial = pb.Feed(fullFeed=pb.FullFeed(marketFF=pb.MarketFullFeed(marketLevel=book, tbq=70_000.0)))
    (tick,) = merger.apply(response(codec.LIVE_FEED, {REL: partial}), KEYS.get)
    assert tick.ltp == 1485.5 and tick.ltt == 1_710_909_637_000 and tick.close == 1480.25
    assert tick.open == 1478.0 and tick.volume == 123_456 and tick.oi == 7500
    assert tick.bids == (DepthLevel(1486.0, 1, 0),) * 5 and tick.asks == (DepthLevel(1486.5, 2, 0),) * 5
    assert tick.total_buy_quantity == 70_000 and tick.total_sell_quantity == 60_000
    # and a trade-only update keeps the book
    trade = pb.Feed(fullFeed=pb.FullFeed(marketFF=pb.MarketFullFeed(ltpc=pb.LTPC(ltp=1487.0, ltt=5, ltq=3))))
    (tick,) = merger.apply(response(codec.LIVE_FEED, {REL: trade}), KEYS.get)
    assert (tick.ltp, tick.ltt, tick.last_trade_quantity, tick.close) == (1487.0, 5, 3, 1480.25)
    assert tick.bids[0] == DepthLevel(1486.0, 1, 0)


def test_merge_state_is_per_instrument_and_forgettable() -> None:
    merger = FeedMerger()
    other = Instrument("TCS", "NSE", "11536")
    names = {**KEYS, "NSE_EQ|TCS": other}.get
    merger.apply(response(codec.LIVE_FEED, {REL: market_feed(), "NSE_EQ|TCS": market_feed(atp=3000.0)}), names)
    merger.forget([REL])
    book_only = pb.Feed(fullFeed=pb.FullFeed(marketFF=pb.MarketFullFeed(tsq=5.0)))
    ticks = merger.apply(response(codec.LIVE_FEED, {REL: book_only, "NSE_EQ|TCS": book_only}), names)
    rel, tcs = sorted(ticks, key=lambda t: t.symbol)  # a protobuf map has no order
    assert rel.ltp == 0.0 and rel.total_sell_quantity == 5  # forgotten: starts afresh
    assert tcs.ltp == 1485.5 and tcs.avg_trade_price == 3000.0 and tcs.total_sell_quantity == 5


def test_ltpc_and_index_feeds() -> None:
    merger = FeedMerger()
    ltp_only = pb.Feed(ltpc=pb.LTPC(ltp=101.5, ltt=9, ltq=4, cp=100.0), requestMode=pb.ltpc)
    index = pb.IndexFullFeed(
        ltpc=pb.LTPC(ltp=26000.5, ltt=8, cp=25900.0),
        marketOHLC=pb.MarketOHLC(ohlc=[pb.OHLC(interval="1d", open=25950.0, high=26010.0, low=25940.0)]),
    )
    index_feed = pb.Feed(fullFeed=pb.FullFeed(indexFF=index), requestMode=pb.full_d5)
    ticks = merger.apply(response(codec.LIVE_FEED, {REL: ltp_only, IDX: index_feed}), KEYS.get)
    nifty, rel = sorted(ticks, key=lambda t: t.symbol)
    assert rel.mode is Mode.LTP and (rel.ltp, rel.ltt, rel.last_trade_quantity, rel.close) == (101.5, 9, 4, 100.0)
    assert rel.bids == () and rel.open == 0.0
    assert nifty.mode is Mode.DEPTH and (nifty.ltp, nifty.close) == (26000.5, 25900.0)
    assert (nifty.open, nifty.high, nifty.low) == (25950.0, 26010.0, 25940.0) and nifty.bids == ()


def test_option_greeks_feed_carries_its_trade_fields() -> None:
    greeks = pb.FirstLevelWithGreeks(ltpc=pb.LTPC(ltp=55.5, ltt=3), vtt=900, oi=1500.0, iv=0.2)
    (tick,) = FeedMerger().apply(response(codec.LIVE_FEED, {REL: pb.Feed(firstLevelWithGreeks=greeks)}), KEYS.get)
    assert (tick.mode, tick.ltp, tick.volume, tick.oi) == (Mode.LTP, 55.5, 900, 1500)


def test_unknown_instruments_are_skipped() -> None:
    assert FeedMerger().apply(response(codec.LIVE_FEED, {"NSE_EQ|UNKNOWN": market_feed()}), KEYS.get) == []


def test_unknown_fields_are_ignored() -> None:
    data = codec.response_bytes(codec.LIVE_FEED, {REL: market_feed()}, 7)
    # a newer server's extra fields: FeedResponse field 15 (varint) and field 16 (length-delimited)
    extra = data + b"\x78\x2a" + b"\x82\x01\x03abc"
    (tick,) = FeedMerger().apply(codec.decode(extra), KEYS.get)
    assert tick.ltp == 1485.5 and tick.exchange_time == 7


def test_malformed_bytes_raise_a_codec_error() -> None:
    with pytest.raises(UpstoxCodecError):
        codec.decode(b"\x12\x09\x0a\x03NSE")
    with pytest.raises(UpstoxCodecError):
        codec.decode(b"\xff\xff\xff")


def test_a_count_that_is_not_finite_is_a_codec_error() -> None:
    for bad in ({"oi": float("nan")}, {"tbq": float("inf")}, {"tsq": float("-inf")}):
        with pytest.raises(UpstoxCodecError, match="finite"):
            FeedMerger().apply(response(codec.LIVE_FEED, {REL: market_feed(**bad)}), KEYS.get)


def test_market_info() -> None:
    data = codec.market_info_bytes({"NSE_EQ": "NORMAL_OPEN", "MCX_FO": "CLOSING_END"}, 1)
    decoded = codec.decode(data)
    assert decoded.type == codec.MARKET_INFO
    assert codec.segment_status(decoded) == {"NSE_EQ": "NORMAL_OPEN", "MCX_FO": "CLOSING_END"}


def test_encoded_30_level_book_round_trips() -> None:
    bids = tuple(DepthLevel(100.0 - i, i + 1, 0) for i in range(30))
    asks = tuple(DepthLevel(101.0 + i, i + 2, 0) for i in range(30))
    tick = Tick("RELIANCE", "NSE", Mode.DEPTH, 100.5, 1, 1, bids=bids[:5], asks=asks[:5])
    feed = codec.feed_of(tick, codec.FULL_D30, bids=bids, asks=asks)
    assert feed.requestMode == pb.full_d30
    (out,) = FeedMerger().apply(response(codec.LIVE_FEED, {REL: feed}), KEYS.get)
    assert out.bids == bids and out.asks == asks


def test_an_empty_book_that_is_sent_replaces_the_last_one() -> None:
    merger = FeedMerger()
    merger.apply(response(codec.LIVE_FEED, {REL: market_feed()}), KEYS.get)
    empty = pb.MarketFullFeed()
    empty.marketLevel.SetInParent()  # sent, with no rows: the book emptied (a halted instrument)
    (tick,) = merger.apply(response(codec.LIVE_FEED, {REL: pb.Feed(fullFeed=pb.FullFeed(marketFF=empty))}), KEYS.get)
    assert tick.bids == () and tick.asks == () and tick.ltp == 1485.5
