"""The recorder's `/metrics` (Prometheus): ticks recorded, files, bytes on disk, gaps, write errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from openalgo_proxy.history.recorder import RecorderStats

log = logging.getLogger(__name__)

NS = "openalgo_proxy_recorder"


class RecorderCollector(Collector):
    def __init__(self, stats: RecorderStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield CounterMetricFamily(f"{NS}_ticks", "ticks handed to the writer", value=s.ticks)
        yield CounterMetricFamily(f"{NS}_rows_written", "ticks written to closed Parquet files", value=s.rows_written)
        yield CounterMetricFamily(f"{NS}_files_written", "Parquet files closed", value=s.files)
        yield CounterMetricFamily(f"{NS}_write_errors", "batches that could not be written", value=s.write_errors)
        yield CounterMetricFamily(f"{NS}_duplicates", "replayed frames already recorded", value=s.duplicates)
        yield GaugeMetricFamily(f"{NS}_store_bytes", "bytes of closed files in the tick store", value=s.store_bytes)
        yield GaugeMetricFamily(f"{NS}_pending_batches", "hand-overs waiting for the writer", value=s.pending)
        gap = s.gaps[-1]["seconds"] if s.gaps else 0.0
        yield GaugeMetricFamily(
            f"{NS}_last_gap_seconds",
            "seconds without recording before this recorder started",
            value=float(gap),  # type: ignore[arg-type]
        )


class RecorderMetricsServer:
    def __init__(self, host: str, port: int, stats: RecorderStats) -> None:
        self.host = host
        self.port = port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RecorderCollector(stats))
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("recorder metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
