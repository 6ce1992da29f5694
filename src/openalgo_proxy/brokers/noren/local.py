"""A Noren member's production adapter against an in-process Noren simulator (`run --broker shoonya-simulator`).

`create(options)` returns an adapter whose start() first starts a NorenSimulator speaking that
member's dialect on a free loopback port, then runs the real NorenAdapter against it (zipped masters
over HTTP, login frame, touchline/depth merge), so the simulated path is the production path.
"""

from __future__ import annotations

import dataclasses
import logging

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions, RejectSink, TickSink
from openalgo_proxy.brokers.noren.adapter import NorenAdapter
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.simulator import NorenSimulator

log = logging.getLogger(__name__)


class LocalNorenAdapter(NorenAdapter):
    """NorenAdapter that owns its simulator."""

    def __init__(self, options: FeedOptions, broker: str) -> None:
        self.simulator = NorenSimulator(broker=broker, ticks_per_second=options.ticks_per_second, seed=options.seed)
        super().__init__(options, broker, NorenCredentials(self.simulator.user_id, self.simulator.token))

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await self.simulator.start()
        sim = self.simulator
        self.options = dataclasses.replace(
            self.options, ws_url=sim.ws_url, instruments=sim.instruments_url, cache_dir=None
        )
        self.ws_url = sim.ws_url
        log.info("%s: using the local Noren simulator at %s", self.name, sim.ws_url)
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


class LocalMemberFactory:
    def __init__(self, name: str) -> None:
        self.name = name

    def create(self, options: FeedOptions) -> BrokerAdapter:
        return LocalNorenAdapter(options, self.name)


shoonya = LocalMemberFactory("shoonya")
flattrade = LocalMemberFactory("flattrade")
zebu = LocalMemberFactory("zebu")
tradesmart = LocalMemberFactory("tradesmart")
definedge = LocalMemberFactory("definedge")
aliceblue = LocalMemberFactory("aliceblue")
