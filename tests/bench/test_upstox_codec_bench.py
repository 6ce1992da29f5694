"""The Upstox codec row of the benchmark measures what it says: whole full-feed messages decoded."""

from __future__ import annotations

from bench import upstox_codec
from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox.codec import FeedMerger
from openalgo_proxy.model import Mode


def test_messages_are_full_feeds_that_normalise_to_depth_ticks() -> None:
    messages = upstox_codec.make_messages(60, per_message=2)
    assert len(messages) == 60
    merger = FeedMerger()
    ticks = [tick for data in messages for tick in merger.apply(codec.decode(data), upstox_codec.INSTRUMENTS.get)]
    assert len(ticks) == 120
    assert all(t.mode is Mode.DEPTH and len(t.bids) == 5 and t.ltp > 0 and t.volume > 0 for t in ticks)
    assert upstox_codec.run_once(messages) > 0
