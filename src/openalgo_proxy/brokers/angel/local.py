"""The production Angel adapter against an in-process Angel simulator: the default path with no account.

`create(options)` returns an adapter whose start() first starts an AngelSimulator on a free
loopback port and then runs the real AngelAdapter against it (REST login with TOTP, instrument
master download, SmartStream WebSocket, binary packets), so the simulated default equals the
production path byte for byte. `options.ticks_per_second` and `options.seed` drive the market.
"""

from __future__ import annotations

import dataclasses
import logging

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions, RejectSink, TickSink
from openalgo_proxy.brokers.market import SIMULATED

log = logging.getLogger(__name__)


class LocalAngelAdapter(AngelAdapter):
    """AngelAdapter that owns its own simulator; clients see `name` as the broker."""

    def __init__(self, options: FeedOptions, name: str = "angel") -> None:
        # the simulated universe with its option series (the chain service's default market)
        self.simulator = AngelSimulator(
            ticks_per_second=options.ticks_per_second, seed=options.seed, listings=SIMULATED
        )
        super().__init__(options, self.simulator.credentials())
        self.name = name

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await self.simulator.start()
        sim = self.simulator
        self.options = dataclasses.replace(
            self.options, ws_url=sim.ws_url, api_url=sim.api_url, instruments=sim.instruments_url, cache_dir=None
        )
        self.ws_url = sim.ws_url
        log.info("angel: using the local Angel simulator at %s", sim.ws_url)
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
    return LocalAngelAdapter(options)
