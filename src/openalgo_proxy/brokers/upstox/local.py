"""The production Upstox adapter against an in-process Upstox simulator (`run --broker upstox-simulator`).

`create(options)` returns an adapter whose start() first starts an UpstoxSimulator on a free loopback
port and then runs the real UpstoxAdapter against it (gzipped JSON master download, bearer header,
302 to a single-use authorised WebSocket, JSON requests in binary frames, protobuf responses), so the
simulated path equals the production path on the wire. The simulated account has Upstox Plus
(30-level books). `options.ticks_per_second` and `options.seed` drive the market.
"""

from __future__ import annotations

import dataclasses
import logging

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions, RejectSink, TickSink
from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.simulator import UpstoxSimulator

log = logging.getLogger(__name__)


class LocalUpstoxAdapter(UpstoxAdapter):
    """UpstoxAdapter that owns its own simulator; clients see `name` as the broker."""

    def __init__(self, options: FeedOptions, name: str = "upstox") -> None:
        self.simulator = UpstoxSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed)
        super().__init__(options, UpstoxCredentials(self.simulator.access_token, full_d30=True))
        self.name = name

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await self.simulator.start()
        sim = self.simulator
        self.options = dataclasses.replace(
            self.options, ws_url=sim.feed_url, instruments=sim.instruments_url, cache_dir=None
        )
        self.ws_url = sim.feed_url
        self.portfolio_url = sim.portfolio_url
        log.info("upstox: using the local Upstox simulator at %s", sim.feed_url)
        try:
            await super().start(on_tick, on_reject)
        except BaseException:
            await self.simulator.stop()
            raise

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            await self.simulator.stop()


def create(options: FeedOptions) -> BrokerAdapter:
    return LocalUpstoxAdapter(options)


__all__ = ["LocalUpstoxAdapter", "create"]
