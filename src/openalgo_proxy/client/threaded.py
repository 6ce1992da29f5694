"""A thread-friendly face of Feed for code that is not asyncio: callbacks on a background loop.

    with FeedThread("ws://127.0.0.1:8765", api_key=KEY) as feed:
        feed.subscribe(["NSE:RELIANCE"], mode="quote", on_tick=handle)
        ...

The feed runs its own event loop in one background thread; callbacks run in that thread, one at
a time, in arrival order. Keep them short (hand heavy work to a queue). An exception in a callback
is logged with its traceback and does not stop the feed. Every method is safe to call from any
thread except from inside a callback (which would wait on its own thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from openalgo_proxy.client.client import DEFAULT_DEPTH, DEFAULT_URL, Feed, State
from openalgo_proxy.client.errors import ClientError, FeedClosed
from openalgo_proxy.client.messages import SubscriptionResult, Tick
from openalgo_proxy.client.symbols import InstrumentLike, ModeLike, Stream, streams, to_instrument
from openalgo_proxy.model import Mode

log = logging.getLogger("openalgo_proxy.client")

TickCallback = Callable[[Tick], None]
ErrorCallback = Callable[[ClientError], None]
T = TypeVar("T")


class FeedThread:
    """Feed in a background thread. `start()` connects (blocking); `stop()` closes and joins."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        on_tick: TickCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_state: Callable[[State], None] | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        self._options = options
        self._on_tick = on_tick
        self._on_error = on_error
        self._on_state = on_state
        self._callbacks: dict[Stream, list[TickCallback]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feed: Feed | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.error: ClientError | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = 30.0) -> FeedThread:
        """Start the thread and wait until the feed is live; raise the feed's error if it fails."""
        if self._thread is not None:
            raise ClientError("FeedThread already started")
        self._thread = threading.Thread(target=self._main, name="openalgo-feed", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise ClientError(f"feed thread did not start within {timeout} s")
        if self.error is not None:
            self._thread.join(timeout)
            raise self.error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the feed, end the loop and join the thread. Idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                log.debug("client: feed loop already closed")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise ClientError(f"feed thread did not stop within {timeout} s")

    def __enter__(self) -> FeedThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def state(self) -> State:
        return self._feed.state if self._feed is not None else State.CLOSED

    @property
    def feed(self) -> Feed:
        """The underlying Feed (its counters are safe to read; call its methods only via this class)."""
        if self._feed is None:
            raise FeedClosed("feed thread not running")
        return self._feed

    # -- requests (blocking) ---------------------------------------------------------------

    def subscribe(
        self,
        instruments: Iterable[InstrumentLike],
        mode: ModeLike = "quote",
        *,
        depth: int = DEFAULT_DEPTH,
        on_tick: TickCallback | None = None,
        timeout: float | None = 30.0,
    ) -> list[SubscriptionResult]:
        """Subscribe; `on_tick` (if given) gets only these streams' ticks, in the feed thread."""
        items = list(instruments)
        wanted = streams(items, mode)

        async def run(feed: Feed) -> list[SubscriptionResult]:
            if on_tick is not None:
                for stream in wanted:
                    self._callbacks.setdefault(stream, []).append(on_tick)
            return await feed.subscribe(items, mode, depth=depth)

        return self._submit(run, timeout)

    def unsubscribe(
        self, instruments: Iterable[InstrumentLike], mode: ModeLike | None = None, *, timeout: float | None = 30.0
    ) -> list[SubscriptionResult]:
        items = list(instruments)
        names = {to_instrument(item) for item in items}
        only = None if mode is None else Mode.parse(mode)

        async def run(feed: Feed) -> list[SubscriptionResult]:
            for stream in list(self._callbacks):
                if (stream.exchange, stream.symbol) in names and only in (None, stream.mode):
                    del self._callbacks[stream]
            return await feed.unsubscribe(items, mode)

        return self._submit(run, timeout)

    def list_subscriptions(self, timeout: float | None = 30.0) -> list[Stream]:
        async def run(feed: Feed) -> list[Stream]:
            return await feed.list_subscriptions()

        return self._submit(run, timeout)

    def _submit(self, job: Callable[[Feed], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        loop, feed = self._loop, self._feed
        if loop is None or feed is None or loop.is_closed():
            raise FeedClosed("feed thread not running")
        if threading.current_thread() is self._thread:
            raise ClientError("FeedThread methods cannot be called from a tick callback")
        return asyncio.run_coroutine_threadsafe(job(feed), loop).result(timeout)

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        feed = Feed(self.url, on_state=self._on_state, **self._options)
        try:
            await feed.start()
        except ClientError as exc:
            self.error = exc
            self._started.set()
            await feed.close()
            return
        self._feed = feed
        self._started.set()
        dispatcher = asyncio.create_task(self._dispatch(feed), name="openalgo-feed dispatch")
        stopper = asyncio.create_task(self._stop.wait())
        await asyncio.wait({dispatcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await feed.close()
        stopper.cancel()
        await asyncio.gather(dispatcher, stopper, return_exceptions=True)

    async def _dispatch(self, feed: Feed) -> None:
        try:
            async for tick in feed:
                self._deliver(tick)
        except ClientError as exc:
            self.error = exc
            log.error("client: feed failed: %s", exc)
            if self._on_error is not None:
                self._on_error(exc)

    def _deliver(self, tick: Tick) -> None:
        targets = list(self._callbacks.get(Stream(tick.exchange, tick.symbol, tick.mode), ()))
        if self._on_tick is not None:
            targets.append(self._on_tick)
        for callback in targets:
            try:
                callback(tick)
            except Exception:
                log.exception("client: tick callback %r failed", callback)
