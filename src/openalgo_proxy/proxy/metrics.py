"""Proxy counters kept as plain ints on the hot path and exposed to Prometheus on scrape."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

NS = "openalgo_proxy"
GAUGE_HELP = {
    "connections_open": "WebSocket connections open now",
    "subscriptions": "client subscriptions held, summed over connections",
    "topics": "distinct bus topics this proxy subscribes",
    "slow_clients": "clients over their outbound budget now (conflating)",
    "broker_connected": "1 if any feed reports a broker connection",
    "tick_age_seconds": "youngest last-tick age reported by the feeds (-1: none)",
    "ready": "1 when /readyz answers 200",
}
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class LatencyHistogram:
    """Cumulative-on-export histogram; observe() is one bisect and two adds."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += weight
        self.total += seconds * weight

    def export(self) -> tuple[list[tuple[str, float]], float]:
        running = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append((repr(bound), float(running)))
        running += self.counts[-1]
        out.append(("+Inf", float(running)))
        return out, self.total


class ProxyMetrics:
    def __init__(self) -> None:
        self.connections_total = 0
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_out = 0
        self.bus_messages = 0
        self.bus_gaps = 0
        self.bus_duplicates = 0
        self.bus_resets = 0
        self.conflated = 0
        self.slow_disconnects: Counter[int] = Counter()
        self.disconnects: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.tick_to_send = LatencyHistogram()


class ProxyCollector(Collector):
    """Reads the live state on every scrape; registered once per proxy."""

    def __init__(self, metrics: ProxyMetrics, gauges: Callable[[], dict[str, float]]) -> None:
        self.metrics = metrics
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        m = self.metrics

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"{NS}_{name}", doc, value=value)

        yield counter("connections", "WebSocket connections accepted", m.connections_total)
        yield counter("messages_received", "client messages received", m.messages_in)
        yield counter("messages_sent", "market data messages queued to clients", m.messages_out)
        yield counter("sent_bytes", "bytes written to client sockets", m.bytes_out)
        yield counter("bus_messages", "messages received from the bus", m.bus_messages)
        yield counter("bus_gaps", "ticks missing from the bus per seq gaps", m.bus_gaps)
        yield counter("bus_duplicates", "duplicate bus frames dropped (snapshot replays)", m.bus_duplicates)
        yield counter("bus_resets", "topic seq restarts (feed restarted)", m.bus_resets)
        yield counter("conflated_ticks", "ticks replaced by a newer one for a slow client", m.conflated)
        slow = CounterMetricFamily(f"{NS}_slow_disconnects", "slow clients closed", labels=["code"])
        for code, count in sorted(m.slow_disconnects.items()):
            slow.add_metric([str(code)], count)
        yield slow
        closed = CounterMetricFamily(f"{NS}_disconnects", "client connections closed", labels=["code"])
        for code, count in sorted(m.disconnects.items()):
            closed.add_metric([str(code)], count)
        yield closed
        errors = CounterMetricFamily(f"{NS}_errors", "error replies sent to clients", labels=["code"])
        for err, count in sorted(m.errors.items()):
            errors.add_metric([err], count)
        yield errors
        buckets, total = m.tick_to_send.export()
        yield HistogramMetricFamily(
            f"{NS}_tick_to_send_seconds",
            "time from a tick's arrival on the bus to its write to client sockets",
            buckets=buckets,
            sum_value=total,
        )
        for name, value in self.gauges().items():
            yield GaugeMetricFamily(f"{NS}_{name}", GAUGE_HELP.get(name, name.replace("_", " ")), value=value)
