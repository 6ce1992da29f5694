"""One upstream WebSocket to a broker, with everything brokers share; the broker fills in hooks.

Shared here, once: the retry layer (`run_with_reconnect`: backoff, credential refresh on 401/403,
long backoff on 429), the stall watchdog (any inbound message, heartbeats and server pings included, is liveness),
the subscription set as state (`wanted`, and `sent` = what the server has on this connection),
the sync loop that turns the difference into requests after every change and after every
(re)connect, the read loop with its decode-error counting, the client heartbeat timer, the state
enum and the counters.

A broker subclasses `UpstreamConnection[Key, UpstreamMode]` and implements:
- `handshake()`: URL and headers of the next connect (query-string or header authentication);
  redirects are followed by the client;
- `authenticate(ws)`: optional first frame (JSON or binary) and its acknowledgement;
- `requests(sent, wanted)`: the frames that turn `sent` into `wanted` (pure);
- `on_message(message)`: decode and hand on; raise one of `decode_errors` for malformed input;
- `is_heartbeat(message)`, `heartbeat`: server heartbeats to count, the client heartbeat to send;
- `refresh_credentials()`: called before reconnecting after an authentication failure.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.protocol import Event

from openalgo_proxy.brokers.base import Backoff, ConnectionState, run_with_reconnect
from openalgo_proxy.errors import BrokerAuthError, BrokerError, BrokerRateLimited
from openalgo_proxy.logs import wire_logger
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)
# websockets logs the request line (tokens in query strings) and headers at DEBUG: its own logger
# never emits DEBUG records, so no configured level can leak a credential.
_wire_log = wire_logger(__name__ + ".wire")

K = TypeVar("K")  # the broker's wire key of an instrument
V = TypeVar("V")  # the broker's upstream subscription mode
Frame = str | bytes


class StalledError(BrokerError):
    """Nothing was received for the stall timeout; the connection is dropped and reopened."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """Where and how to connect. `url` may carry credentials in its query string: it is never logged."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


def public_url(url: str) -> str:
    """`url` without its query string (which may hold credentials), for messages and logs."""
    return url.split("?", 1)[0]


#: a refused handshake's HTTP status -> the error the retry layer acts on (others: a plain retry)
_REFUSALS: dict[int, type[BrokerError]] = {401: BrokerAuthError, 403: BrokerAuthError, 429: BrokerRateLimited}


def handshake_error(exc: InvalidStatus) -> BrokerError:
    """Classify a refused handshake once: 401/403 refresh credentials, 429 backs off long."""
    status = exc.response.status_code
    reason = exc.response.headers.get("x-error-message", "")
    text = f"handshake refused: HTTP {status} {reason}".strip()
    return _REFUSALS.get(status, BrokerError)(text)


class PingAwareConnection(ClientConnection):
    """A client connection that tells `on_ping` about every ping the server sends (answered by
    websockets as always): a broker that pings an idle connection (Upstox) proves it is alive."""

    on_ping: Callable[[], None] | None = None

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        if isinstance(event, WireFrame) and event.opcode is Opcode.PING and self.on_ping is not None:
            self.on_ping()


@dataclass(frozen=True, slots=True)
class Settings:
    """The shell's timings and limits, the same for every connection of an account."""

    stall_timeout: float = 15.0  # seconds without any inbound message before a forced reconnect
    heartbeat_interval: float = 30.0  # client heartbeat period (capped at stall_timeout / 3)
    ping_interval: float | None = 20.0  # WebSocket protocol pings (None: off)
    open_timeout: float = 10.0
    close_timeout: float = 1.0
    max_size: int = 1 << 20  # largest inbound message
    stable_after: float = 10.0  # a connection that lived this long resets the backoff


class UpstreamConnection(abc.ABC, Generic[K, V]):
    """One pooled upstream connection. `start()` once, `set_wanted()` any time, `stop()` once."""

    #: exceptions `on_message` raises for malformed input: counted, logged, and the connection stays
    decode_errors_raised: ClassVar[tuple[type[Exception], ...]] = (ValueError,)
    #: the client heartbeat frame, sent every `heartbeat_interval` (None: the broker needs none)
    heartbeat: ClassVar[Frame | None] = None

    def __init__(self, label: str, settings: Settings | None = None, backoff: Backoff | None = None) -> None:
        self.label = label
        self.settings = settings = settings or Settings()
        self.stall_timeout = settings.stall_timeout
        # a quiet market sends nothing but heartbeat answers: send often enough that silence is a stall
        self.heartbeat_interval = min(settings.heartbeat_interval, settings.stall_timeout / 3.0)
        self.backoff = backoff or Backoff()
        self.wanted: dict[K, V] = {}
        self.sent: dict[K, V] = {}
        self.state = ConnectionState.DISCONNECTED
        self.connects = self.stalls = self.heartbeats = self.decode_errors = 0  # counters
        self.last_message = 0.0  # time.monotonic() of the last inbound message
        self._dirty = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # -- hooks -------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def handshake(self) -> Handshake:
        """URL and headers for the next connect, with the current credentials."""

    async def authenticate(self, ws: ClientConnection) -> None:
        """After the WebSocket opens: send a first auth frame and await its answer (raise BrokerAuthError)."""

    @abc.abstractmethod
    def requests(self, sent: Mapping[K, V], wanted: Mapping[K, V]) -> list[Frame]:
        """The frames that turn the server's set `sent` into `wanted` (pure; empty when equal)."""

    @abc.abstractmethod
    def on_message(self, message: Frame) -> None:
        """Decode one inbound non-heartbeat message and hand its contents on."""

    def is_heartbeat(self, message: Frame) -> bool:
        """A liveness-only message from the server (counted, not decoded)."""
        return False

    async def refresh_credentials(self) -> None:
        """Called before reconnecting after the broker refused the credentials."""

    def on_connected(self) -> None:
        """Per-connection state to reset (request ids, merge state) after each (re)connect."""

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def set_wanted(self, wanted: Mapping[K, V]) -> None:
        self.wanted = dict(wanted)
        self._dirty.set()

    def start(self) -> None:
        if self._task is None:
            self._closing = False
            self.state = ConnectionState.CONNECTING
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.label)

    async def stop(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        try:
            await cancel_and_wait(task)  # a caller cancelled meanwhile (the feed stopping) stays cancelled
        finally:
            self.state = ConnectionState.CLOSED
            self.sent = {}

    def info(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "state": self.state.value,
            "subscriptions": len(self.sent),
            "wanted": len(self.wanted),
            "reconnects": self.reconnects,
            "age": round(time.monotonic() - self.last_message, 3) if self.last_message else None,
        }

    # -- the shell ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        await run_with_reconnect(
            self._connect_and_serve,
            backoff=self.backoff,
            refresh_credentials=self.refresh_credentials,
            should_run=lambda: not self._closing,
            on_state=self._set_state,
            stable_after=self.settings.stable_after,
            label=self.label,
        )

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state

    async def _open(self, handshake: Handshake) -> ClientConnection:
        try:
            return await connect(
                handshake.url,
                additional_headers=dict(handshake.headers),
                open_timeout=self.settings.open_timeout,
                ping_interval=self.settings.ping_interval,
                ping_timeout=self.settings.ping_interval,
                close_timeout=self.settings.close_timeout,
                max_size=self.settings.max_size,
                compression=None,
                logger=_wire_log,
                create_connection=PingAwareConnection,
            )
        except InvalidStatus as exc:
            raise handshake_error(exc) from None
        except InvalidURI:
            raise BrokerError(f"invalid WebSocket URL {public_url(handshake.url)!r}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise BrokerError(f"cannot connect to {public_url(handshake.url)}: {exc}") from None

    async def _connect_and_serve(self) -> None:
        handshake = await self.handshake()
        ws = await self._open(handshake)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.authenticate(ws)
            self.connects += 1
            self.on_connected()  # `sent` is empty: every connection ends with it emptied
            self._set_state(ConnectionState.CONNECTED)
            log.info("%s: connected to %s (connect #%d)", self.label, public_url(handshake.url), self.connects)
            self.last_message = time.monotonic()
            if isinstance(ws, PingAwareConnection):
                ws.on_ping = self._on_server_ping
            self._dirty.set()
            loops = {"read": self._read(ws), "sync": self._sync_loop(ws), "stall": self._watch_stall(ws)}
            if self.heartbeat is not None:
                loops["heartbeat"] = self._send_heartbeats(ws)
            elif self.settings.ping_interval is not None:  # no application heartbeat: a pong is liveness
                loops["ping"] = self._ping_for_liveness(ws)
            tasks = [asyncio.create_task(loop, name=f"{self.label}-{name}") for name, loop in loops.items()]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the failure that ended the connection (a stall included)
        except ConnectionClosed as exc:
            raise BrokerError(f"connection lost: {exc}") from exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.sent = {}
            try:
                await asyncio.wait_for(ws.close(), timeout=self.settings.close_timeout)
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.debug("%s: close handshake skipped: %s", self.label, exc)
            ws.transport.abort()

    async def _watch_stall(self, ws: ClientConnection) -> None:
        """Drop the connection when nothing at all arrived for the stall timeout (checked 4 times per timeout)."""
        while True:
            await asyncio.sleep(max(self.stall_timeout / 4.0, 0.01))
            if time.monotonic() - self.last_message >= self.stall_timeout:
                self.stalls += 1
                ws.transport.abort()
                raise StalledError(f"no message for {self.stall_timeout:g} s")

    def _on_server_ping(self) -> None:
        """A server ping: liveness, counted as a heartbeat."""
        self.last_message = time.monotonic()
        self.heartbeats += 1

    async def _send_heartbeats(self, ws: ClientConnection) -> None:
        assert self.heartbeat is not None
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await ws.send(self.heartbeat)

    async def _ping_for_liveness(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await (await ws.ping())
            self.last_message = time.monotonic()

    async def _sync_loop(self, ws: ClientConnection) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            wanted = dict(self.wanted)
            frames = self.requests(self.sent, wanted)
            if not frames:
                continue
            added = sum(1 for key, mode in wanted.items() if self.sent.get(key) != mode)
            removed = sum(1 for key in self.sent if key not in wanted)
            # the server's set is `wanted` once these frames are out; an error reply that arrives
            # meanwhile takes its keys back out of `sent` (see on_message of the broker)
            self.sent = wanted
            for frame in frames:
                await ws.send(frame)
            log.info("%s: subscribed %d (+%d -%d)", self.label, len(self.sent), added, removed)

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            self.last_message = time.monotonic()
            if self.is_heartbeat(message):
                self.heartbeats += 1
                continue
            try:
                self.on_message(message)
            except self.decode_errors_raised as exc:
                self.decode_errors += 1
                if self.decode_errors == 1 or self.decode_errors % 1000 == 0:
                    log.warning("%s: skipped a malformed message (%d so far): %s", self.label, self.decode_errors, exc)
