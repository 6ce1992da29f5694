"""A broker adapter bound to OpenAlgo's stored session: restarted on a new session, stopped on revoke.

The inner adapter (Angel, Zerodha) takes its credentials from the OpenAlgo session (a
CredentialProvider) and never logs in. When the session changes (a new login after the daily
expiry, a token changed by OpenAlgo), the inner adapter is replaced: the old one stops first
(brokers cap connections per account), the new one starts and gets the same wanted set. When the
session goes away (logout, revoke), upstream connections close and every wanted instrument, and any
new one, is refused with BROKER_UNAVAILABLE until OpenAlgo logs in again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from openalgo_proxy.brokers.base import AdapterStatus, BrokerAdapter, ConnectionState, Rejection, RejectSink, TickSink
from openalgo_proxy.brokers.credentials import BrokerCredentials, CredentialProvider
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Instrument, Mode
from openalgo_proxy.openalgo.session import OpenAlgoSession

log = logging.getLogger(__name__)

AdapterFactory = Callable[[CredentialProvider], BrokerAdapter]


def _ignore(_: object) -> None:
    return None


class SessionBoundAdapter(BrokerAdapter):
    def __init__(self, session: OpenAlgoSession, make: AdapterFactory, name: str) -> None:
        self.session = session
        self._make = make
        self.name = name
        self.inner: BrokerAdapter | None = None
        self._on_tick: TickSink = _ignore
        self._on_reject: RejectSink = _ignore
        self._wanted: dict[Instrument, Mode] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.live = False  # a session is in use
        self.restarts = 0
        self._stopped = False

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        self._on_tick, self._on_reject = on_tick, on_reject
        await self.session.wait_usable()
        async with self._lock:
            self.inner = self._make(self.session)
            await self.inner.start(on_tick, on_reject)
            self.live = True
        self.session.on_change(self._session_changed)

    def _session_changed(self, credentials: BrokerCredentials | None) -> None:
        if self._stopped:
            return
        task = asyncio.get_running_loop().create_task(self._follow(credentials), name="openalgo-session-follow")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, credentials: BrokerCredentials | None) -> None:
        async with self._lock:
            if self._stopped:
                return
            old = self.inner
            if credentials is None:
                if old is not None and self.live:
                    log.warning("openalgo: %s session gone; closing the upstream connections", self.name)
                    await old.stop()
                self.live = False
                for instrument, mode in list(self._wanted.items()):
                    self._refuse(instrument, mode)
                self._wanted = {}
                return
            latest = self.session.latest()
            if latest is None or latest.generation != credentials.generation:
                return  # superseded by a later change, which has its own task
            if old is not None and self.live:
                await old.stop()
            self.restarts += 1
            log.info("openalgo: %s reconnecting with OpenAlgo's new session (restart %d)", self.name, self.restarts)
            fresh = self._make(self.session)
            try:
                await fresh.start(self._on_tick, self._on_reject)
            except Exception:
                log.exception("openalgo: %s could not start with the new session", self.name)
                self.live = False
                return
            self.inner = fresh
            self.live = True
            if self._wanted:
                await fresh.set_wanted(self._wanted)

    def _refuse(self, instrument: Instrument, mode: Mode) -> None:
        message = f"the broker session is not available ({self.session.reason}); log in to OpenAlgo again"
        self._on_reject(Rejection(instrument, mode, ErrorCode.BROKER_UNAVAILABLE, message))

    def exchanges(self) -> tuple[str, ...]:
        return self.inner.exchanges() if self.inner is not None else ()

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self.inner.lookup(exchange, symbol) if self.inner is not None else None

    def directory(self) -> Mapping[str, Iterable[str]]:
        return self.inner.directory() if self.inner is not None else {}

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        async with self._lock:
            if not self.live:
                for instrument, mode in wanted.items():
                    self._refuse(instrument, mode)
                self._wanted = {}
                return
            self._wanted = dict(wanted)
            assert self.inner is not None
            await self.inner.set_wanted(self._wanted)

    def status(self) -> AdapterStatus:
        if self.inner is None or not self.live:
            return AdapterStatus(
                state=ConnectionState.DISCONNECTED,
                extra={"openalgo_session": "unavailable", "reason": self.session.reason},
            )
        status = self.inner.status()
        status.extra = {**status.extra, "openalgo_session": self.session.generation, "session_restarts": self.restarts}
        return status

    async def stop(self) -> None:
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        async with self._lock:
            if self.inner is not None and self.live:
                await self.inner.stop()
            self.live = False
