"""A standby feed: watches `#status|BROKER` on the bus and takes the broker account over when the
active feed stops publishing it.

Passive, a standby holds no upstream connection and no XPUB socket, so it publishes nothing
(no ticks, no status, no snapshots, no rejects) and costs the broker account nothing: only a SUB
socket on the forwarder's proxy side (`watch`) listening to the broker's status topic.

Taking over builds a fresh Feed (new adapter, new XPUB connected to the forwarder's XSUB). The
XSUB replays every live subscription to a newly connected publisher, so the new feed learns the
whole wanted set at once, subscribes it upstream and publishes from a new seq run: proxies count
a seq reset, not a gap, and clients get the first tick of the new run as a fresh snapshot.

Split-brain rule (two feeds of one account both active): a standby that is active and sees the
status of another active feed yields (stops its adapter, back to passive) when the other one is a
plain primary (not started with `--standby`), or, between two standbys, when the other became
active first (`active_since`, ties by `instance`). So a returning primary wins within one status
interval, and of two standbys that took over at once the younger steps down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from openalgo_proxy import control, topics
from openalgo_proxy.bus import Subscriber
from openalgo_proxy.errors import ControlMessageError
from openalgo_proxy.feed.shell import Feed
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a feed's status says about its hold on the account."""

    instance: str
    active_since: int
    standby: bool

    @classmethod
    def of(cls, status: control.FeedStatus) -> Claim | None:
        """None for a status that names no instance or start time (a feed without failover)."""
        if not status.instance or status.active_since <= 0:
            return None
        return cls(status.instance, status.active_since, status.standby)


def should_yield(mine: Claim, other: Claim) -> bool:
    """True if `mine` must give the account up to `other` (both active)."""
    if not other.standby:
        return True  # a plain primary always holds the account
    return (other.active_since, other.instance) < (mine.active_since, mine.instance)


class StandbyFeed:
    """Passive until the active feed's status is stale for `takeover_after` seconds."""

    def __init__(
        self,
        make_feed: Callable[[], Feed],
        broker: str,
        watch: list[str],
        *,
        takeover_after: float = 5.0,
        check_interval: float = 0.25,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self._make_feed = make_feed
        self.broker = broker
        self.watch = watch
        self.takeover_after = takeover_after
        self.check_interval = check_interval
        self._ctx = ctx or zmq.Context.instance()
        self.feed: Feed | None = None
        self.takeovers = 0
        self._subscriber: Subscriber | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_other = 0.0
        self._patience = takeover_after
        self._yield_to: Claim | None = None
        self._wake = asyncio.Event()
        self._status_topic = topics.status_topic(broker)

    @property
    def role(self) -> str:
        return "active" if self.feed is not None else "passive"

    def current(self) -> Feed | None:
        return self.feed

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_other = time.monotonic()  # give a running primary time to answer our subscription
        self._new_patience()
        self._subscriber = Subscriber(self._ctx, self.watch, self._on_message, lambda: None)
        self._subscriber.attach(loop)
        self._subscriber.subscribe(self._status_topic)
        self._task = loop.create_task(self._run(), name="standby-watch")
        log.info(
            "feed %s standby: watching %s on %s; takeover after %.1f s of silence",
            self.broker,
            self._status_topic.decode(),
            ", ".join(self.watch),
            self.takeover_after,
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.feed is not None:
            feed, self.feed = self.feed, None
            await feed.stop()
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    def _new_patience(self) -> None:
        # a little jitter so that two standbys rarely take over in the same instant
        self._patience = self.takeover_after * random.uniform(1.0, 1.25)

    def _on_message(self, parts: list[bytes]) -> None:
        if len(parts) != 3 or parts[0] != self._status_topic:
            return
        try:
            status = control.decode_status(parts[2])
        except ControlMessageError as exc:
            log.warning("feed %s standby: %s", self.broker, exc)
            return
        claim = Claim.of(status)
        feed = self.feed
        if claim is None or (feed is not None and claim.instance == feed.instance):
            return  # our own status, or one without a claim
        self._last_other = time.monotonic()
        if feed is not None and self._yield_to is None:
            mine = Claim(feed.instance, feed.active_since_ms, True)
            if should_yield(mine, claim):
                self._yield_to = claim
                self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_interval)
            self._wake.clear()
            if self.feed is not None:
                if self._yield_to is not None:
                    await self._step_down(self._yield_to)
                continue
            silence = time.monotonic() - self._last_other
            if silence > self._patience:
                await self.take_over(silence)

    async def take_over(self, silence: float = 0.0) -> None:
        """Become active now (the watch loop calls this on silence; a test can force a conflict)."""
        if self.feed is not None:
            return
        feed = self._make_feed()
        feed.standby = True
        log.warning(
            "feed %s standby: no status from an active feed for %.1f s; taking over the broker account",
            self.broker,
            silence,
        )
        try:
            await feed.start()
        except asyncio.CancelledError:
            await feed.stop()
            raise
        except Exception:
            log.exception("feed %s standby: takeover failed; staying passive", self.broker)
            await feed.stop()
            self._last_other = time.monotonic()
            return
        self.feed = feed
        self.takeovers += 1

    async def _step_down(self, other: Claim) -> None:
        feed, self.feed = self.feed, None
        self._yield_to = None
        log.warning(
            "feed %s standby: feed %s also holds the account (active since %d); stepping down",
            self.broker,
            other.instance,
            other.active_since,
        )
        if feed is not None:
            await feed.stop()
        self._last_other = time.monotonic()
        self._new_patience()
