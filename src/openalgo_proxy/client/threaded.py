"""A thread-friendly face of Client for code that is not asyncio: callbacks on a background loop.

    with ClientThread("ws://127.0.0.1:8765", api_key=KEY) as client:
        client.subscribe(["NSE:RELIANCE"], mode="quote", on_tick=handle)
        ...

The client runs its own event loop in one background thread; callbacks run in that thread, one at
a time, in arrival order. Keep them short (hand heavy work to a queue). An exception in a callback
is logged with its traceback and does not stop the client. Every method is safe to call from any
thread except from inside a callback (which would wait on its own thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from openalgo_proxy.client.client import DEFAULT_DEPTH, DEFAULT_URL, Client, State
from openalgo_proxy.client.errors import ClientClosed, ClientError
from openalgo_proxy.client.messages import SubscriptionResult, Tick
from openalgo_proxy.client.symbols import InstrumentLike, ModeLike, Stream, streams, to_instrument
from openalgo_proxy.model import Mode

log = logging.getLogger("openalgo_proxy.client")

TickCallback = Callable[[Tick], None]
ErrorCallback = Callable[[ClientError], None]
T = TypeVar("T")


class ClientThread:
    """Client in a background thread. `start()` connects (blocking); `stop()` closes and joins."""

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
        self._client: Client | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.error: ClientError | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = 30.0) -> ClientThread:
        """Start the thread and wait until the client is live; raise the client's error if it fails."""
        if self._thread is not None:
            raise ClientError("ClientThread already started")
        self._thread = threading.Thread(target=self._main, name="openalgo-client", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise ClientError(f"client thread did not start within {timeout} s")
        if self.error is not None:
            self._thread.join(timeout)
            raise self.error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the client, end the loop and join the thread. Idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                log.debug("client: event loop already closed")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise ClientError(f"client thread did not stop within {timeout} s")

    def __enter__(self) -> ClientThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def state(self) -> State:
        return self._client.state if self._client is not None else State.CLOSED

    @property
    def client(self) -> Client:
        """The underlying Client (its counters are safe to read; call its methods only via this class)."""
        if self._client is None:
            raise ClientClosed("client thread not running")
        return self._client

    feed = client  # the name before 0.2, kept for existing code

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
        """Subscribe; `on_tick` (if given) gets only these streams' ticks, in the client thread."""
        items = list(instruments)
        wanted = streams(items, mode)

        async def run(client: Client) -> list[SubscriptionResult]:
            if on_tick is not None:
                for stream in wanted:
                    self._callbacks.setdefault(stream, []).append(on_tick)
            return await client.subscribe(items, mode, depth=depth)

        return self._submit(run, timeout)

    def unsubscribe(
        self, instruments: Iterable[InstrumentLike], mode: ModeLike | None = None, *, timeout: float | None = 30.0
    ) -> list[SubscriptionResult]:
        items = list(instruments)
        names = {to_instrument(item) for item in items}
        only = None if mode is None else Mode.parse(mode)

        async def run(client: Client) -> list[SubscriptionResult]:
            for stream in list(self._callbacks):
                if (stream.exchange, stream.symbol) in names and only in (None, stream.mode):
                    del self._callbacks[stream]
            return await client.unsubscribe(items, mode)

        return self._submit(run, timeout)

    def list_subscriptions(self, timeout: float | None = 30.0) -> list[Stream]:
        async def run(client: Client) -> list[Stream]:
            return await client.list_subscriptions()

        return self._submit(run, timeout)

    def _submit(self, job: Callable[[Client], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        loop, client = self._loop, self._client
        if loop is None or client is None or loop.is_closed():
            raise ClientClosed("client thread not running")
        if threading.current_thread() is self._thread:
            raise ClientError("ClientThread methods cannot be called from a tick callback")
        return asyncio.run_coroutine_threadsafe(job(client), loop).result(timeout)

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        client = Client(self.url, on_state=self._on_state, **self._options)
        try:
            await client.start()
        except ClientError as exc:
            self.error = exc
            self._started.set()
            await client.close()
            return
        self._client = client
        self._started.set()
        dispatcher = asyncio.create_task(self._dispatch(client), name="openalgo-client dispatch")
        stopper = asyncio.create_task(self._stop.wait())
        await asyncio.wait({dispatcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await client.close()
        stopper.cancel()
        await asyncio.gather(dispatcher, stopper, return_exceptions=True)

    async def _dispatch(self, client: Client) -> None:
        try:
            async for tick in client:
                self._deliver(tick)
        except ClientError as exc:
            self.error = exc
            log.error("client: connection failed: %s", exc)
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
