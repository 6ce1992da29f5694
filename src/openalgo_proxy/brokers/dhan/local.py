"""The production Dhan adapter against an in-process Dhan simulator (`run --broker dhan-simulator`).

`create(options)` returns an adapter whose start() first starts a DhanSimulator on a free loopback
port and then runs the real DhanAdapter against it (CSV master download, market-feed WebSocket with
query-string credentials, multi-packet binary frames), so the simulated path equals the production
path byte for byte. `options.ticks_per_second` and `options.seed` drive the market.
"""

from __future__ import annotations

import dataclasses
import logging

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions, RejectSink, TickSink
from openalgo_proxy.brokers.dhan.adapter import DhanAdapter
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator

log = logging.getLogger(__name__)


class LocalDhanAdapter(DhanAdapter):
    """DhanAdapter that owns its own simulator; clients see `name` as the broker."""

    def __init__(self, options: FeedOptions, name: str = "dhan") -> None:
        self.simulator = DhanSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed)
        super().__init__(options, DhanCredentials(self.simulator.client_id, self.simulator.access_token))
        self.name = name

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await self.simulator.start()
        sim = self.simulator
        self.options = dataclasses.replace(
            self.options, ws_url=sim.ws_url, instruments=sim.instruments_url, cache_dir=None
        )
        self.ws_url = sim.ws_url
        log.info("dhan: using the local Dhan simulator at %s", sim.ws_url)
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
    return LocalDhanAdapter(options)
