"""Feed leadership per broker account on a NATS KV lease (engine "nats").

Every feed of an account campaigns for the key ``<BROKER>`` in the leader bucket. The holder's value
names its run (`Feed.run`); the key carries a per-message TTL (`lease_ttl`) and is renewed every
TTL/4 by a compare-and-set publish (``Nats-Expected-Last-Subject-Sequence`` = the holder's revision).

- Acquire: the key is absent, deleted, or an expiry marker -> publish with the expected sequence of
  that state. Success = holder; only then is the adapter started (one broker connection per account).
- Renew conflict (another revision) -> read the key: another run holds it -> stop the feed now; the
  key lapsed (deleted or expired while the KV was electing) -> acquire again, same run.
- No answer (timeout, no responders, disconnected) is not a conflict: keep streaming and retrying
  ("unknown is not lost"); only a holder cut off from every server for longer than the TTL steps
  down, since nobody receives its ticks then anyway.
- Graceful stop: delete the key with the compare-and-set header -> the standbys' watch fires and
  one of them acquires within milliseconds.
- Standby: watches the key; acquires on a delete or expiry marker, and retries every TTL/2.
- Fencing: proxies deliver frames only of runs that hold a lease (`bus_nats.LeaseRuns`), so an old
  holder that wakes from a pause cannot reach a client; it stops at its first renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE, KeyValue

from openalgo_proxy.bus_nats import KV_TIMEOUT, FastClient, NatsFeedBus, connect, ensure_bucket, ttl_header, watch_kv
from openalgo_proxy.config import BusSettings
from openalgo_proxy.feed.shell import Feed
from openalgo_proxy.subjects import Names, escape
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
EXPIRY_GRACE = 0.3  # x TTL a standby waits after an expiry marker (a live holder renews every 0.25 x TTL)


class LeaseConflict(Exception):
    """The key is held by another run (a definite answer, not a timeout)."""


class LeaderFeed:
    """Runs a Feed only while it holds the broker account's lease."""

    def __init__(self, make_feed: Callable[[], Feed], broker: str, settings: BusSettings) -> None:
        self._make_feed = make_feed
        self.broker = broker
        self.settings = settings
        self.names = Names(settings.prefix)
        self.ttl = settings.lease_ttl
        self.key = escape(broker)
        self.subject = f"$KV.{self.names.leader_bucket}.{self.key}"
        self.feed: Feed | None = None
        self.bus: NatsFeedBus | None = None
        self.nc: FastClient | None = None
        self._kv: KeyValue | None = None
        self.revision = 0
        self.takeovers = 0
        self.lost = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._disconnected_at = 0.0
        self._expired = False
        self.instance = f"{socket.gethostname()[:24]}-{id(self):x}"

    @property
    def role(self) -> str:
        return "active" if self.feed is not None else "passive"

    def current(self) -> Feed | None:
        return self.feed

    async def start(self) -> None:
        self.nc = await connect(
            self.settings, f"feed {self.broker}", disconnected=self._on_disconnected, reconnected=self._on_reconnected
        )
        js = self.nc.jetstream(timeout=KV_TIMEOUT)
        self._kv = await ensure_bucket(js, self.names.leader_bucket, self.settings.replicas, max(5.0, self.ttl * 2))
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        self._tasks = [
            loop.create_task(
                watch_kv(self._kv, self.key, self._on_lease_change, ready, self._on_lease_expired), name="lease-watch"
            ),
            loop.create_task(self._run(), name="lease"),
        ]
        log.info("feed %s: campaigning for the account (lease TTL %.1f s)", self.broker, self.ttl)

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self._resign(release=True)
        if self.nc is not None:
            nc, self.nc = self.nc, None
            with contextlib.suppress(nats.errors.Error):
                await nc.close()

    def _on_disconnected(self) -> None:
        self._disconnected_at = time.monotonic()

    def _on_reconnected(self) -> None:
        self._disconnected_at = 0.0
        self._wake.set()

    def _on_lease_expired(self, key: str) -> None:
        self._expired = True

    def _on_lease_change(self, key: str, value: bytes, deleted: bool) -> None:
        if deleted and self.feed is None:
            self._wake.set()  # the holder released or lapsed: try now

    # -- the loop ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if self.feed is None:
                if self._expired:
                    # The key expired rather than being released: its holder may be alive and
                    # merely unanswered while the KV elected a leader; it renews every TTL/4, so
                    # give it that long (and a bit) to take the key back before competing.
                    self._expired = False
                    await asyncio.sleep(EXPIRY_GRACE * self.ttl)
                await self._campaign()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.ttl / 2)
                self._wake.clear()
            else:
                await asyncio.sleep(self.ttl / 4)
                await self._renew()

    async def _campaign(self) -> None:
        try:
            expected = await self._free_revision()
            if expected is None:
                return
            feed = self._make_feed()  # only for a free key: an adapter may be costly to build
            self.revision = await self._put(feed.run, expected)
        except LeaseConflict:
            return
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("feed %s: lease unreachable (%s)", self.broker, exc or type(exc).__name__)
            return
        log.warning("feed %s: holding the account (run %d); starting the adapter", self.broker, feed.run)
        assert self.nc is not None
        nc, settings = self.nc, self.settings

        async def open_bus(f: Feed) -> NatsFeedBus:
            bus = NatsFeedBus(nc, settings, f.on_bus_subscription, f.snapshot_of, f.exchanges, f.run)
            await bus.open()
            self.bus = bus
            return bus

        feed.bus_opener = open_bus
        self.feed = feed
        self.takeovers += 1
        try:
            await feed.start()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed %s: adapter start failed; releasing the account", self.broker)
            await self._resign(release=True)

    async def _free_revision(self) -> int | None:
        """The sequence to expect when the key is free (0 = never written), None if it is held."""
        seq, holder = await self._read()
        return seq if holder is None else None

    async def _read(self) -> tuple[int, dict[str, object] | None]:
        """The key's last sequence and its holder's value (None: absent, deleted or expired)."""
        assert self.nc is not None
        js = self.nc.jetstream(timeout=KV_TIMEOUT)
        try:
            msg = await js.get_last_msg(f"KV_{self.names.leader_bucket}", self.subject, direct=True)
        except nats.js.errors.NotFoundError:
            return 0, None
        headers = msg.headers or {}
        if headers.get(KV_OP) in (KV_DEL, KV_PURGE) or KV_MARKER_REASON in headers or not msg.data:
            return int(msg.seq or 0), None
        try:
            value = json.loads(msg.data)
        except ValueError:
            value = {}
        return int(msg.seq or 0), value if isinstance(value, dict) else {}

    async def _put(self, run: int, expected: int) -> int:
        assert self.nc is not None
        value = json.dumps(
            {"instance": self.instance, "host": socket.gethostname(), "run": run, "since": int(time.time() * 1000)}
        ).encode()
        headers = {"Nats-Expected-Last-Subject-Sequence": str(expected), "Nats-TTL": ttl_header(self.ttl)}
        try:
            # answered or not within a renewal period: a slow answer must not delay the next try
            js = self.nc.jetstream(timeout=max(0.25, self.ttl / 4))
            ack = await js.publish(self.subject, value, headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise LeaseConflict from exc
            raise
        return int(ack.seq)

    async def _renew(self) -> None:
        feed = self.feed
        if feed is None:
            return
        if self._disconnected_at and time.monotonic() - self._disconnected_at > self.ttl:
            log.warning("feed %s: cut off from every NATS server for over %.1f s; stepping down", self.broker, self.ttl)
            await self._resign(release=False)
            return
        try:
            self.revision = await self._put(feed.run, self.revision)
            return
        except LeaseConflict:
            pass
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning(
                "feed %s: lease renewal unanswered (%s); still streaming", self.broker, exc or type(exc).__name__
            )
            return
        try:
            seq, holder = await self._read()
            if holder is None:  # lapsed while the KV could not answer: take it back, same run
                self.revision = await self._put(feed.run, seq)
                log.warning("feed %s: lease lapsed and re-acquired", self.broker)
                return
            if holder.get("instance") == self.instance and holder.get("run") == feed.run:
                # a renewal the KV applied but whose answer was lost (an election): still ours
                self.revision = seq
                return
        except LeaseConflict:
            pass
        except (nats.errors.Error, TimeoutError):
            return
        log.warning("feed %s: another feed holds the account now; stopping at once", self.broker)
        self.lost += 1
        await self._resign(release=False)

    async def _resign(self, *, release: bool) -> None:
        feed, self.feed = self.feed, None
        bus, self.bus = self.bus, None
        if feed is not None:
            if feed.publisher is not None:
                feed.publisher.close()  # no frame leaves after this point
            if release:
                await self._release()
            await feed.stop()
        if bus is not None:
            await bus.aclose()

    async def _release(self) -> None:
        if self.nc is None or not self.revision:
            return
        headers = {KV_OP: KV_DEL, "Nats-Expected-Last-Subject-Sequence": str(self.revision)}
        try:
            await self.nc.jetstream(timeout=KV_TIMEOUT).publish(self.subject, b"", headers=headers)
            log.info("feed %s: released the account", self.broker)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("feed %s: release failed (%s); the lease lapses after its TTL", self.broker, exc)
        self.revision = 0
