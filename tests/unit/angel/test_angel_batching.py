"""Subscribe batching: one request per mode, tokens grouped by exchange type, split at 1000 tokens."""

from __future__ import annotations

from openalgo_proxy.brokers.angel.codec import SubscriptionMode
from openalgo_proxy.brokers.angel.connection import MAX_TOKENS_PER_REQUEST, group_requests


def test_grouped_by_mode_and_exchange_type() -> None:
    pairs = {
        (1, "2885"): SubscriptionMode.SNAP_QUOTE,
        (1, "3045"): SubscriptionMode.SNAP_QUOTE,
        (13, "1185"): SubscriptionMode.SNAP_QUOTE,
        (2, "52175"): SubscriptionMode.LTP,
        (1, "1594"): SubscriptionMode.LTP,
    }
    assert group_requests(pairs) == [
        (SubscriptionMode.LTP, {1: ["1594"], 2: ["52175"]}),
        (SubscriptionMode.SNAP_QUOTE, {1: ["2885", "3045"], 13: ["1185"]}),
    ]


def test_large_sets_split_into_few_requests() -> None:
    pairs = {(1, str(i)): SubscriptionMode.QUOTE for i in range(2500)}
    batches = group_requests(pairs)
    assert [sum(len(tokens) for tokens in batch.values()) for _, batch in batches] == [1000, 1000, 500]
    assert MAX_TOKENS_PER_REQUEST == 1000
    assert {token for _, batch in batches for token in batch[1]} == {str(i) for i in range(2500)}
    assert group_requests({}) == []
