"""Upstream health as the proxy sees it: one labelled series per broker, from the feeds' `#status`.

Read on scrape from the statuses the hub keeps; the broker label is the only label (a handful of
values), never a symbol or a client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from openalgo_proxy.control import FeedState

NS = "openalgo_proxy"


def _number(status: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = status.get(key, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


class BrokerStatusCollector(Collector):
    def __init__(self, feeds: Callable[[], dict[str, dict[str, Any]]], stale_after: float) -> None:
        self.feeds = feeds
        self.stale_after = stale_after

    def collect(self) -> Iterator[Metric]:
        feeds = self.feeds()
        up = GaugeMetricFamily(
            f"{NS}_broker_up", "1 if the broker feed's status is fresh and it is connected upstream", labels=["broker"]
        )
        state = GaugeMetricFamily(
            f"{NS}_broker_state", "broker connection state (1 = current)", labels=["broker", "state"]
        )
        reconnects = CounterMetricFamily(
            f"{NS}_broker_reconnects", "upstream reconnects of the feed", labels=["broker"]
        )
        subs = GaugeMetricFamily(
            f"{NS}_broker_upstream_subscriptions", "instruments the feed holds at the broker", labels=["broker"]
        )
        age = GaugeMetricFamily(
            f"{NS}_broker_last_tick_age_seconds", "seconds since the feed's last tick (-1: none)", labels=["broker"]
        )
        status_age = GaugeMetricFamily(
            f"{NS}_broker_status_age_seconds", "seconds since the feed's last status on the bus", labels=["broker"]
        )
        for broker, status in sorted(feeds.items()):
            fresh = _number(status, "status_age") < self.stale_after
            current = str(status.get("state", FeedState.DISCONNECTED)) if fresh else FeedState.DISCONNECTED
            up.add_metric([broker], float(fresh and current == FeedState.CONNECTED))
            for candidate in FeedState:
                state.add_metric([broker, candidate.value], float(candidate == current))
            reconnects.add_metric([broker], _number(status, "reconnects"))
            subs.add_metric([broker], _number(status, "subscriptions"))
            age.add_metric([broker], _number(status, "last_tick_age", -1.0))
            status_age.add_metric([broker], _number(status, "status_age"))
        yield from (up, state, reconnects, subs, age, status_age)
