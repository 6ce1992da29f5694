"""The asyncio client of the proxy: authenticate, subscribe, iterate typed ticks, reconnect.

    async with connect("ws://127.0.0.1:8765", api_key=KEY) as client:
        await client.subscribe(["NSE:RELIANCE", "NSE_INDEX:NIFTY"], mode="quote")
        async for tick in client:
            print(tick.symbol, tick.ltp)

One background task owns the WebSocket: it connects, authenticates, replays the held
subscriptions, then reads. Replies are matched to requests by `request_id`. When the connection
drops it reconnects with exponential backoff and full jitter, re-authenticates and resubscribes;
a tick whose (stream, seq) was already delivered (the snapshot after a resubscribe) is dropped.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ssl import SSLContext
from types import TracebackType
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from openalgo_proxy.client.backoff import Backoff, BackoffState
from openalgo_proxy.client.errors import (
    AuthenticationError,
    ClientClosed,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    RequestTimeout,
    ServerError,
    SubscriptionError,
)
from openalgo_proxy.client.failures import describe
from openalgo_proxy.client.messages import ProtocolViolation, Reply, SubscriptionResult, Tick, decode
from openalgo_proxy.client.symbols import InstrumentLike, ModeLike, Stream, streams, to_instrument
from openalgo_proxy.errors import CloseCode, ProxyError
from openalgo_proxy.model import Mode
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger("openalgo_proxy.client")

DEFAULT_URL = "ws://127.0.0.1:8765"
DEFAULT_DEPTH = 5
AUTH_CODES = frozenset({"AUTHENTICATION_ERROR", "NOT_AUTHENTICATED"})
# Close codes after which reconnecting cannot help, and minimum delays for those that ask us to wait.
FATAL_CLOSES = frozenset({int(CloseCode.AUTH_TIMEOUT), int(CloseCode.POLICY_VIOLATION)})
# Refusals that go away by themselves (a proxy that just started, a broker reconnecting): retried.
TRANSIENT_CODES = frozenset({"BROKER_UNAVAILABLE", "RATE_LIMITED"})
RETRY_BACKOFF = Backoff(initial=0.25, maximum=5.0)
SLOW_DOWN = {int(CloseCode.TOO_MANY_REQUESTS): 5.0, int(CloseCode.TRY_AGAIN_LATER): 1.0}


class State(enum.Enum):
    """Where the client's connection is. Only LIVE accepts requests."""

    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


StateCallback = Callable[[State], None]


class _Disconnected(ProxyError):
    """Internal: the connection carrying a request went away before its reply."""


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Reply]
    expect: frozenset[str]


class Client:
    """A resilient subscription to the proxy. Use `connect()` or call `start()` / `close()`."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        first_connect_timeout: float | None = 10.0,
        request_timeout: float = 10.0,
        max_buffered_ticks: int = 100_000,
        on_state: StateCallback | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        origin: str | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        self.url = url
        self._credentials: dict[str, str] = {}
        if api_key:
            self._credentials = {"api_key": api_key}
        elif token:
            self._credentials = {"token": token}
        self._reconnect = reconnect
        self._backoff = BackoffState(backoff or Backoff())
        self._first_connect_timeout = first_connect_timeout
        self._request_timeout = request_timeout
        self._on_state = on_state
        self._connect_options: dict[str, Any] = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "compression": None,
            "max_size": 4 * 1024 * 1024,
            "open_timeout": 10.0,
            "close_timeout": 2.0,
        }
        if origin:
            self._connect_options["origin"] = origin
        if ssl is not None:  # wss:// with a private CA; the default context verifies against the system's CAs
            self._connect_options["ssl"] = ssl
        self._held: dict[Stream, int] = {}
        self._retry: set[Stream] = set()  # held, refused for a transient reason, to subscribe again
        self._retry_wanted = asyncio.Event()
        self._last_seq: dict[Stream, tuple[int, str]] = {}
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._ticks: deque[Tick] = deque(maxlen=max_buffered_ticks)
        self._tick_ready = asyncio.Event()
        self._state = State.CLOSED
        self._state_changed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: ClientError | None = None
        self._closing = False
        self.auth_reply: dict[str, Any] = {}
        self.ticks_received = 0
        self.duplicates_dropped = 0
        self.reconnects = 0
        # why the last connection attempt failed or the last connection ended ("" once live again),
        # and how many attempts in a row have failed: for a status line
        self.last_error = ""
        self.failed_attempts = 0
        # ticks discarded, oldest first, because the consumer fell `max_buffered_ticks` behind
        self.ticks_dropped = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def held(self) -> list[Stream]:
        """The streams this client holds and replays after every reconnect."""
        return list(self._held)

    async def start(self) -> None:
        """Connect and authenticate; raise ConnectFailed or AuthenticationError if that fails."""
        if self._task is not None:
            raise ClientError("client already started")
        self._closing = False
        self._failure = None
        self._set_state(State.CONNECTING)
        self._task = asyncio.create_task(self._run(), name=f"openalgo-client {self.url}")
        await self._wait_for(lambda: self._state == State.LIVE, None)

    async def close(self) -> None:
        """Close the connection, stop reconnecting and end every iteration. Idempotent."""
        self._closing = True
        if self._failure is None:
            self._failure = ClientClosed("client closed")
        task, self._task = self._task, None
        if self._ws is not None:
            await self._ws.close()
        await cancel_and_wait(task)
        self._set_state(State.CLOSED)
        self._tick_ready.set()

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- ticks -----------------------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Tick:
        while not self._ticks:
            if self._failure is not None:
                if isinstance(self._failure, ClientClosed):
                    raise StopAsyncIteration
                raise self._failure
            self._tick_ready.clear()
            await self._tick_ready.wait()
        return self._ticks.popleft()

    def _accept_tick(self, tick: Tick) -> None:
        self.ticks_received += 1
        stream = Stream(tick.exchange, tick.symbol, tick.mode)
        # a replayed snapshot repeats the last tick exactly; a feed that restarted a topic reuses
        # seq numbers, so the exchange timestamp must match too
        mark = (tick.seq, tick.timestamp)
        if tick.seq and self._last_seq.get(stream) == mark:
            self.duplicates_dropped += 1
            return
        self._last_seq[stream] = mark
        if len(self._ticks) == self._ticks.maxlen:
            self.ticks_dropped += 1
        self._ticks.append(tick)
        self._tick_ready.set()

    # -- requests --------------------------------------------------------------------------

    async def subscribe(
        self, instruments: Iterable[InstrumentLike], mode: ModeLike = "quote", *, depth: int = DEFAULT_DEPTH
    ) -> list[SubscriptionResult]:
        """Subscribe instruments (``"NSE:RELIANCE"`` or ``("NSE", "RELIANCE")``) in one mode.

        Returns every entry's result; raises SubscriptionError if any entry failed for good (the
        others are held all the same) and ServerError if the whole request was refused. Entries
        refused for a transient reason (BROKER_UNAVAILABLE, RATE_LIMITED: a proxy that just started)
        are reported in the results, held, and subscribed again in the background with backoff.
        """
        wanted = streams(instruments, mode)
        if not wanted:
            return []
        payload: dict[str, Any] = {"action": "subscribe", "symbols": _entries(wanted), "mode": int(wanted[0].mode)}
        if wanted[0].mode == Mode.DEPTH and depth != DEFAULT_DEPTH:
            payload["depth"] = depth
        reply = await self._call(payload, frozenset({"subscription"}))
        results = _results(reply, wanted)
        for result in results:
            if result.ok or result.code in TRANSIENT_CODES:
                self._held[_stream_of(result, wanted[0].mode)] = depth
        self._settle([(_stream_of(r, wanted[0].mode), "" if r.ok else r.code, r.message) for r in results])
        _raise_failed(reply, [r for r in results if r.code not in TRANSIENT_CODES])
        return results

    async def unsubscribe(
        self, instruments: Iterable[InstrumentLike], mode: ModeLike | None = None
    ) -> list[SubscriptionResult]:
        """Unsubscribe instruments in one mode, or in every mode held when `mode` is None."""
        if mode is not None:
            gone = streams(instruments, mode)
        else:
            names = {to_instrument(item) for item in instruments}
            gone = [stream for stream in self._held if (stream.exchange, stream.symbol) in names]
            held_names = {(stream.exchange, stream.symbol) for stream in gone}
            # not held at all: ask anyway so the server reports NOT_SUBSCRIBED for it
            gone += [Stream(exchange, symbol, Mode.LTP) for exchange, symbol in names - held_names]
        if not gone:
            return []
        entries = [{"symbol": s.symbol, "exchange": s.exchange, "mode": int(s.mode)} for s in gone]
        reply = await self._call({"action": "unsubscribe", "symbols": entries}, frozenset({"unsubscription"}))
        for stream in gone:
            self._held.pop(stream, None)
            self._retry.discard(stream)
            self._last_seq.pop(stream, None)
        results = _results(reply, gone)
        _raise_failed(reply, results)
        return results

    async def unsubscribe_all(self) -> None:
        await self._call({"action": "unsubscribe_all"}, frozenset({"unsubscription"}))
        self._held.clear()
        self._retry.clear()
        self._last_seq.clear()

    async def list_subscriptions(self) -> list[Stream]:
        """What the server says this connection holds."""
        reply = await self._call({"action": "list_subscriptions"}, frozenset({"subscriptions"}))
        return [_stream_of(result, Mode.DEPTH) for result in reply.results()]

    async def ping(self) -> float:
        """Application-level ping; returns the round trip in seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._call({"action": "ping"}, frozenset({"pong"}))
        return loop.time() - started

    async def search(self, query: str, exchange: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Instruments matching `query` (symbol prefix, words of the name, typos), best first: each a
        dict with symbol, exchange, name, instrument_type, tick_size, lot_size. ServerError if refused."""
        fields: dict[str, Any] = {"query": query, "limit": limit}
        if exchange:
            fields["exchange"] = exchange
        reply = await self._call({"action": "search", **fields}, frozenset({"search"}))
        results = reply.body.get("results", [])
        return [item for item in results if isinstance(item, dict)] if isinstance(results, list) else []

    async def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """Any other request (e.g. ``get_broker_info``); returns the reply object."""
        reply = await self._call({"action": action, **fields}, frozenset())
        return reply.body

    async def wait_live(self) -> None:
        """Wait until the connection is live (raises the client's failure if it can never be)."""
        await self._wait_for(lambda: self._state == State.LIVE, None)

    async def _call(self, payload: dict[str, Any], expect: frozenset[str]) -> Reply:
        """Send a request on the live connection, surviving reconnects until the request timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._request_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RequestTimeout(f"no reply to {payload['action']} within {self._request_timeout} s")
            await self._wait_for(lambda: self._state == State.LIVE, remaining)
            ws = self._ws
            if ws is None:
                raise ClientError("internal: live client without a connection")
            try:
                return await self._request_on(ws, payload, expect, deadline - loop.time())
            except _Disconnected:
                continue

    async def _request_on(
        self, ws: ClientConnection, payload: dict[str, Any], expect: frozenset[str], within: float
    ) -> Reply:
        request_id = f"c{next(self._ids)}"
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(future, expect)
        try:
            await ws.send(msgspec.json.encode({**payload, "request_id": request_id}).decode())
            reply = await asyncio.wait_for(future, max(within, 0.001))
        except TimeoutError:
            raise RequestTimeout(f"no reply to {payload['action']} within {self._request_timeout} s") from None
        except ConnectionClosed:
            raise _Disconnected from None
        finally:
            self._pending.pop(request_id, None)
        if reply.type == "error":
            error = AuthenticationError if reply.code in AUTH_CODES else ServerError
            raise error(reply.code or "ERROR", reply.message, reply.request_id)
        return reply

    def _accept_reply(self, reply: Reply) -> None:
        pending = self._pending.get(reply.request_id) if reply.request_id else None
        if pending is None and reply.request_id is None:
            # a server that does not echo request_id: the oldest request expecting this reply type
            pending = next((p for p in self._pending.values() if reply.type == "error" or reply.type in p.expect), None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(reply)
        elif reply.type == "error":
            log.warning("client: server error %s: %s", reply.code, reply.message)
        else:
            log.debug("client: unsolicited %s message", reply.type)

    # -- the connection task ---------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        first_deadline = None if self._first_connect_timeout is None else loop.time() + self._first_connect_timeout
        been_live = False
        while not self._closing:
            min_delay = 0.0
            try:
                ws = await ws_connect(self.url, **self._connect_options)
            except InvalidURI as exc:
                self._fail(ConnectFailed(f"invalid proxy URL {self.url!r}: {exc}"))
                return
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    self._fail(AuthenticationError("AUTHENTICATION_ERROR", f"handshake refused: {exc}"))
                    return
                if not self._may_retry(exc, been_live, first_deadline):
                    return
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                if not self._may_retry(exc, been_live, first_deadline):
                    return
            else:
                self._ws = ws
                try:
                    been_live = await self._session(ws) or been_live
                except AuthenticationError as exc:
                    self._fail(exc)
                    return
                except (_Disconnected, RequestTimeout, ServerError) as exc:
                    log.info("client: session on %s ended early: %s", self.url, exc)
                finally:
                    self._ws = None
                    await ws.close()
                    self._fail_pending()
                if self._closing_requested():
                    return
                code = ws.close_code
                log.info("client: connection closed (code %s %s)", code, ws.close_reason or "")
                self.last_error = f"closed {code}{': ' + ws.close_reason if ws.close_reason else ''}"
                if code == CloseCode.AUTH_TIMEOUT:
                    self._fail(AuthenticationError("NOT_AUTHENTICATED", "closed for lack of authentication"))
                    return
                if code in FATAL_CLOSES or not self._reconnect:
                    self._fail(ConnectionLost(f"connection closed with code {code}", code))
                    return
                if not been_live and first_deadline is not None and loop.time() >= first_deadline:
                    self._fail(ConnectFailed(f"{self.url} accepted connections but never went live (code {code})"))
                    return
                min_delay = SLOW_DOWN.get(code or 0, 0.0)
                self.reconnects += 1
            self._set_state(State.RECONNECTING if been_live else State.CONNECTING)
            delay = self._backoff.next_delay(min_delay)
            if first_deadline is not None and not been_live:
                delay = min(delay, max(0.0, first_deadline - loop.time()))
            await asyncio.sleep(delay)

    def _may_retry(self, exc: Exception, been_live: bool, first_deadline: float | None) -> bool:
        """After a failed connect: whether to try again (else the client has failed)."""
        reason = describe(exc)
        log.info("client: connect to %s failed: %s", self.url, reason)
        self.last_error = reason
        self.failed_attempts += 1
        if not been_live and first_deadline is not None and asyncio.get_running_loop().time() >= first_deadline:
            self._fail(ConnectFailed(f"cannot connect to {self.url}: {reason}"))
            return False
        if been_live and not self._reconnect:
            self._fail(ConnectionLost(f"connection to {self.url} lost: {reason}"))
            return False
        return True

    def _closing_requested(self) -> bool:
        return self._closing

    async def _session(self, ws: ClientConnection) -> bool:
        """Authenticate, resubscribe, then read until the connection closes; True if it went live."""
        reader = asyncio.create_task(self._read(ws), name="openalgo-client reader")
        try:
            if self._credentials:
                self._set_state(State.AUTHENTICATING)
                reply = await self._request_on(
                    ws, {"action": "authenticate", **self._credentials}, frozenset({"auth"}), self._request_timeout
                )
                self.auth_reply = reply.body
            await self._replay(ws)
            self._backoff.reset()
            self.last_error = ""
            self.failed_attempts = 0
            self._set_state(State.LIVE)
            retrier = asyncio.create_task(self._retry_loop(ws), name="openalgo-client retry")
            try:
                await reader
            finally:
                await cancel_and_wait(retrier)
            return True
        finally:
            # leave LIVE before anything awaits, so no request is sent on the dead connection
            self._ws = None
            if self._state == State.LIVE:
                self._set_state(State.RECONNECTING)
            await cancel_and_wait(reader)

    async def _replay(self, ws: ClientConnection) -> None:
        """Resubscribe everything held on a new connection."""
        self._retry.clear()
        await self._resubscribe(ws, dict(self._held))

    async def _resubscribe(self, ws: ClientConnection, wanted: dict[Stream, int]) -> None:
        """Subscribe `wanted`, one request per (mode, depth). Transient refusals go to the retry set;
        permanent ones are dropped from what the client holds (and logged)."""
        groups: dict[tuple[Mode, int], list[Stream]] = {}
        for stream, depth in wanted.items():
            groups.setdefault((stream.mode, depth), []).append(stream)
        for (mode, depth), group in groups.items():
            payload: dict[str, Any] = {"action": "subscribe", "symbols": _entries(group), "mode": int(mode)}
            if mode == Mode.DEPTH and depth != DEFAULT_DEPTH:
                payload["depth"] = depth
            try:
                reply = await self._request_on(ws, payload, frozenset({"subscription"}), self._request_timeout)
            except AuthenticationError:
                raise
            except ServerError as exc:
                self._settle([(stream, exc.code, exc.message) for stream in group])
                continue
            self._settle([(_stream_of(r, mode), "" if r.ok else r.code, r.message) for r in _results(reply, group)])

    def _settle(self, outcomes: list[tuple[Stream, str, str]]) -> None:
        """Record subscribe outcomes (stream, error code or "", message) for held streams."""
        for stream, code, message in outcomes:
            if not code:
                self._retry.discard(stream)
            elif code in TRANSIENT_CODES:
                self._retry.add(stream)
            else:
                log.warning("client: subscription %s mode %d refused: %s %s", stream.name, stream.mode, code, message)
                self._retry.discard(stream)
                self._held.pop(stream, None)
        if self._retry:
            self._retry_wanted.set()

    async def _retry_loop(self, ws: ClientConnection) -> None:
        """Retry transiently refused subscriptions on this connection, with backoff, until they settle."""
        backoff = BackoffState(RETRY_BACKOFF)
        while True:
            await self._retry_wanted.wait()
            if not self._retry:
                self._retry_wanted.clear()
                backoff.reset()
                continue
            await asyncio.sleep(backoff.next_delay(minimum=0.05))
            pending = {stream: self._held[stream] for stream in self._retry if stream in self._held}
            self._retry.clear()
            try:
                await self._resubscribe(ws, pending)
            except (_Disconnected, ClientError) as exc:
                self._retry.update(pending)  # the next connection replays them anyway
                log.info("client: retrying subscriptions stopped: %s", exc)
                return

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                try:
                    item = decode(message)
                except ProtocolViolation as exc:
                    log.warning("client: %s", exc)
                    continue
                if isinstance(item, Reply):
                    self._accept_reply(item)
                else:
                    self._accept_tick(item)
        except ConnectionClosed:
            pass
        finally:
            self._fail_pending()

    # -- state -----------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state == self._state:
            return
        self._state = state
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        if self._on_state is not None:
            self._on_state(state)

    async def _wait_for(self, condition: Callable[[], bool], within: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while not condition():
            if self._failure is not None:
                raise self._failure
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise RequestTimeout(f"proxy not live within {within} s (state {self._state.value})")
            changed = self._state_changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                continue

    def _fail(self, error: ClientError) -> None:
        log.warning("client: giving up on %s: %s", self.url, error)
        self.last_error = str(error)
        self._failure = error
        self._set_state(State.CLOSED)
        self._tick_ready.set()

    def _fail_pending(self) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(_Disconnected())


def _entries(group: list[Stream]) -> list[dict[str, str]]:
    return [{"symbol": stream.symbol, "exchange": stream.exchange} for stream in group]


def _stream_of(result: SubscriptionResult, default_mode: Mode) -> Stream:
    mode = Mode(result.mode) if result.mode in (1, 2, 3) else default_mode
    return Stream(result.exchange, result.symbol, mode)


def _results(reply: Reply, asked: list[Stream]) -> list[SubscriptionResult]:
    results = reply.results()
    if results or reply.status not in ("success", ""):
        return results
    # a server that confirms without per-entry detail: every entry succeeded
    return [SubscriptionResult(s.symbol, s.exchange, int(s.mode)) for s in asked]


def _raise_failed(reply: Reply, results: list[SubscriptionResult]) -> None:
    failed = [result for result in results if not result.ok]
    if failed:
        first = failed[0]
        message = f"{len(failed)} of {len(results)} failed; {first.exchange}:{first.symbol}: {first.message}"
        raise SubscriptionError(first.code or "ERROR", message, results, reply.request_id)


# ``async with connect(url, api_key=...) as client:`` -- the Client class itself, so every option is typed.
connect = Client
