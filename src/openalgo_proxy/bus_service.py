"""`BusService`: the shell of a service that sits on the bus between the feeds and the proxies.

The chain service and the candle service are such participants. An XPUB, bound, to which proxies
connect their SUB: its subscriptions say which of the service's topics someone wants. A SUB,
connected to the feeds, that holds only what the wanted topics need. A beat that publishes what
changed every `beat_interval` seconds. The shell owns the two sockets, the lifecycle and the beat
task; a service implements `on_subscription()` (a proxy started or stopped wanting a topic),
`on_frame()` (a frame from the feeds) and `beat()`, and lists in `feed_prefixes` what it reads from
the feeds whatever is wanted. `serve()` runs one as its own process (the `chain` and `candles`
commands).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

import zmq

from openalgo_proxy.bus import Publisher, Subscriber, run_seq_base
from openalgo_proxy.tasks import cancel_and_wait

if TYPE_CHECKING:
    from openalgo_proxy.config import BusSettings

log = logging.getLogger(__name__)


class BusService(abc.ABC):
    """One service on the bus: `start()` once, `stop()` once."""

    #: the service's name in logs and task names
    label: ClassVar[str]
    #: feed topic prefixes held from the start (e.g. the instrument directories)
    feed_prefixes: ClassVar[tuple[bytes, ...]] = ()

    def __init__(
        self,
        bind: str,
        feeds: Iterable[str],
        beat_interval: float,
        clock: Callable[[], float],
        ctx: zmq.Context[zmq.Socket[bytes]] | None,
    ) -> None:
        self.bind = bind
        self.feeds = list(feeds)
        self.beat_interval = beat_interval
        self.clock = clock  # epoch seconds; injectable for tests
        self._ctx = ctx or zmq.Context.instance()
        self._seq_base = run_seq_base(time.time())
        self.publisher: Publisher | None = None
        self.subscriber: Subscriber | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @abc.abstractmethod
    def on_subscription(self, subscribe: bool, topic: bytes) -> None:
        """A proxy started (`subscribe`) or stopped wanting `topic` on the service's XPUB."""

    @abc.abstractmethod
    def on_frame(self, parts: list[bytes]) -> None:
        """One multipart frame from the feeds."""

    @abc.abstractmethod
    def beat(self) -> None:
        """Publish what changed since the last beat."""

    @property
    def endpoint(self) -> str:
        assert self.publisher is not None
        return self.publisher.endpoint

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.publisher = Publisher(self._ctx, self.bind, on_subscription=self.on_subscription)
        self.subscriber = Subscriber(self._ctx, self.feeds, self.on_frame, lambda: None)
        self.publisher.attach(loop)
        self.subscriber.attach(loop)
        for prefix in self.feed_prefixes:
            self.subscriber.subscribe(prefix)
        self._tasks = [loop.create_task(self._every_beat(), name=f"{self.label}-beat")]
        log.info("%s service on %s, reading %s", self.label, self.publisher.endpoint, ", ".join(self.feeds))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        for sock in (self.subscriber, self.publisher):
            if sock is not None:
                sock.close()
        self.subscriber = self.publisher = None

    async def _every_beat(self) -> None:
        while True:
            await asyncio.sleep(self.beat_interval)
            self.beat()


def serve(bus: BusSettings, service: BusService) -> int:
    """Run `service` as its own process until a signal, on a bus secured as `[bus]` says."""
    from openalgo_proxy.bus_curve import Role  # the process's imports: not needed by a service in a test
    from openalgo_proxy.bus_security import secure_bus
    from openalgo_proxy.runtime import run_until_signal

    guard = secure_bus(bus, Role.SERVER, bind=[service.bind], connect=service.feeds)
    try:
        return run_until_signal(service.start, service.stop)
    finally:
        guard.close()
