"""A feed's own HTTP side: `/metrics` (Prometheus), `/healthz`, `/status` (JSON) on a metrics port.

Everything is read on scrape from the live feed (plain ints on the tick path, nothing else), in
the feed's event loop, so no locking is needed. A standby that holds no upstream reports
`openalgo_proxy_feed_active 0` and zero upstream subscriptions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from openalgo_proxy.brokers.base import ConnectionState

if TYPE_CHECKING:
    from openalgo_proxy.feed.shell import Feed

log = logging.getLogger(__name__)

NS = "openalgo_proxy_feed"


class FeedCollector(Collector):
    """Exports the current feed (None while a standby is passive) on every scrape."""

    def __init__(self, broker: str, current: Callable[[], Feed | None], takeovers: Callable[[], int]) -> None:
        self.broker = broker
        self.current = current
        self.takeovers = takeovers

    def collect(self) -> Iterator[Metric]:
        feed = self.current()
        labels = [self.broker]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"{NS}_{name}", doc, labels=["broker"])
            family.add_metric(labels, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"{NS}_{name}", doc, labels=["broker"])
            family.add_metric(labels, value)
            return family

        st = feed.adapter.status() if feed is not None else None
        state = st.state if st is not None else ConnectionState.DISCONNECTED
        yield gauge("active", "1 if this feed holds the broker account (0: passive standby)", float(feed is not None))
        connected = float(state is ConnectionState.CONNECTED)
        yield gauge("broker_connected", "1 if the upstream broker connection is up", connected)
        states = GaugeMetricFamily(
            f"{NS}_broker_state", "upstream connection state (1 = current)", labels=["broker", "state"]
        )
        for candidate in ConnectionState:
            states.add_metric([self.broker, candidate.value], float(candidate is state))
        yield states
        yield gauge("upstream_connections", "open upstream broker connections", float(st.connections if st else 0))
        yield gauge(
            "upstream_subscriptions", "instruments subscribed at the broker", float(st.subscriptions if st else 0)
        )
        yield gauge("topics", "bus topics some proxy wants", float(len(feed.wanted_topics()) if feed else 0))
        age = time.monotonic() - feed.last_tick_monotonic if feed is not None and feed.last_tick_monotonic else -1.0
        yield gauge("last_tick_age_seconds", "seconds since the last tick from the broker (-1: none yet)", age)
        yield counter("reconnects", "upstream reconnects", float(st.reconnects if st else 0))
        decode_errors = (st.decode_errors if st else 0) + (feed.sanity.rejected if feed else 0)
        yield counter("decode_errors", "broker packets that failed to decode or were impossible", float(decode_errors))
        yield counter("ticks_received", "ticks received from the broker", float(feed.ticks_in if feed else 0))
        published = float(feed.messages_out if feed else 0)
        yield counter("messages_published", "market data messages published on the bus", published)
        yield counter("takeovers", "times this standby took over the broker account", float(self.takeovers()))


class FeedMetricsServer:
    """aiohttp on the feed's event loop: /metrics, /healthz, /status."""

    def __init__(
        self,
        host: str,
        port: int,
        broker: str,
        current: Callable[[], Feed | None],
        takeovers: Callable[[], int] = lambda: 0,
        role: Callable[[], str] = lambda: "active",
    ) -> None:
        self.host = host
        self.port = port
        self.current = current
        self.role = role
        self.broker = broker
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FeedCollector(broker, current, takeovers))
        ProcessCollector(namespace="openalgo_proxy", registry=self.registry)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        addresses = self._runner.addresses  # the bound port when 0 was asked for
        if addresses:
            self.port = int(addresses[0][1])
        log.info("feed %s metrics on http://%s:%d/metrics", self.broker, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _status(self, request: web.Request) -> web.Response:
        feed = self.current()
        body: dict[str, Any] = {"broker": self.broker, "role": self.role()}
        if feed is not None:
            body.update(
                msgspec.structs.asdict(feed.status()),
                topics_wanted=feed.wanted_topics(),
                upstream=feed.upstream_pairs(),
            )
        else:
            body.update(state="standby", topics_wanted=[], upstream={})
        return web.Response(text=json.dumps(body), content_type="application/json")
