"""`NAME-simulator`: a broker's production adapter against its own simulator, started in-process.

`LocalAdapter.start()` starts the broker's simulator on a free loopback port (ticks per second and
seed from the options) and then runs the real adapter against it: REST login, instrument master
download, WebSocket, binary packets. So the simulated path equals the production path byte for byte,
and every broker gets it by providing `simulator_for(options)` and `adapter_for(simulator, options)`
in its spec's simulator entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from openalgo_proxy.brokers.base import AdapterStatus, BrokerAdapter, FeedOptions, OrderSink, RejectSink, TickSink
from openalgo_proxy.brokers.spec import BrokerSpec
from openalgo_proxy.model import Instrument, Mode

log = logging.getLogger(__name__)


class LocalAdapter(BrokerAdapter):
    """Owns a simulator and the broker's adapter; clients see the broker's own name."""

    def __init__(self, spec: BrokerSpec, options: FeedOptions) -> None:
        module = spec.simulator_module()
        self.simulator = module.simulator_for(options)
        self._module = module
        self.options = options
        self.name = spec.name
        self.inner: BrokerAdapter | None = None
        self._order_sink: OrderSink | None = None

    def _adapter(self) -> BrokerAdapter:
        if self.inner is None:
            raise RuntimeError("LocalAdapter.start() has not completed")
        return self.inner

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await self.simulator.start()
        log.info("%s: using the local %s simulator at %s", self.name, self.name, self.simulator.ws_url)
        try:
            inner = self._module.adapter_for(self.simulator, self.options)
            if self._order_sink is not None:
                inner.set_order_sink(self._order_sink)
            await inner.start(on_tick, on_reject)
        except BaseException:
            await self.simulator.stop()
            raise
        self.inner = inner

    def set_order_sink(self, on_order: OrderSink) -> None:
        self._order_sink = on_order

    async def stop(self) -> None:
        try:
            if self.inner is not None:
                await self.inner.stop()
        finally:
            await self.simulator.stop()

    def exchanges(self) -> tuple[str, ...]:
        return self._adapter().exchanges()

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self._adapter().lookup(exchange, symbol)

    def directory(self) -> Mapping[str, Iterable[str]]:
        return self._adapter().directory()

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        await self._adapter().set_wanted(wanted)

    def status(self) -> AdapterStatus:
        return self._adapter().status() if self.inner is not None else AdapterStatus()
