"""One upstream Kite ticker connection: a thin asyncio shell around the pure codec.

It connects (`<ws_url>?api_key=..&access_token=..`, header `X-Kite-Version: 3`), keeps the upstream
subscription set equal to the wanted set (token -> mode) across reconnects, feeds the stall watchdog
with every inbound message (1-byte heartbeats included) and hands decoded packets to a callback.
Reconnects go through the one retry layer, `run_with_reconnect`: 403 -> BrokerAuthError (refresh the
access token), 429 -> BrokerRateLimited (back off long). Connected lazily: only while something is wanted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from openalgo_proxy.brokers.base import Backoff, ConnectionState, StallWatchdog, run_with_reconnect
from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import ErrorMessage, KiteCodecError, KiteMode, KitePacket, OrderUpdate
from openalgo_proxy.errors import BrokerAuthError, BrokerError, BrokerRateLimited
from openalgo_proxy.logs import wire_logger

log = logging.getLogger(__name__)
# The handshake request line carries the access token in its query string and websockets logs it at
# DEBUG: give the client its own logger that never goes below INFO, so no log level leaks the token.
_wire_log = wire_logger(__name__ + ".wire")

PacketSink = Callable[[list[KitePacket], int], None]  # packets, receive time (epoch ms)
TOKENS_PER_MESSAGE = 500
KITE_HEADERS = {"X-Kite-Version": "3"}


def handshake_error(exc: InvalidStatus) -> BrokerError:
    """Classify a refused handshake once, at the boundary."""
    status = exc.response.status_code
    if status in (401, 403):
        return BrokerAuthError(f"handshake refused with HTTP {status} (access token invalid or expired)")
    if status == 429:
        return BrokerRateLimited("handshake refused with HTTP 429 (too many connections or requests)")
    return BrokerError(f"handshake refused with HTTP {status}")


def _chunks(tokens: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(tokens), TOKENS_PER_MESSAGE):
        yield tokens[start : start + TOKENS_PER_MESSAGE]


def diff_requests(sent: Mapping[int, KiteMode], wanted: Mapping[int, KiteMode]) -> list[bytes]:
    """The batched requests that turn the `sent` subscription set into `wanted` (pure)."""
    messages: list[bytes] = []
    removed = [t for t in sent if t not in wanted]
    for chunk in _chunks(removed):
        messages.append(codec.encode_unsubscribe(chunk))
    added: dict[KiteMode, list[int]] = {}
    changed: dict[KiteMode, list[int]] = {}
    for token, mode in wanted.items():
        if token not in sent:
            added.setdefault(mode, []).append(token)
        elif sent[token] != mode:
            changed.setdefault(mode, []).append(token)
    for mode, tokens in added.items():
        for chunk in _chunks(tokens):
            messages.append(codec.encode_subscribe(chunk))
            messages.append(codec.encode_mode(mode, chunk))
    for mode, tokens in changed.items():
        for chunk in _chunks(tokens):
            messages.append(codec.encode_mode(mode, chunk))
    return messages


class KiteConnection:
    """One pooled upstream connection. `set_wanted` any time; `close` once."""

    def __init__(
        self,
        label: str,
        endpoint: Callable[[], str],
        refresh_credentials: Callable[[], Awaitable[None]],
        on_packets: PacketSink,
        stall_timeout: float,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        keep_open: bool = False,
    ) -> None:
        self.label = label
        self._endpoint = endpoint
        self._refresh = refresh_credentials
        self._on_packets = on_packets
        self._stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._open_timeout = open_timeout
        self.keep_open = keep_open  # stay connected with nothing wanted (the pool's first connection)
        self._wanted: dict[int, KiteMode] = {}
        self._sent: dict[int, KiteMode] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.state = ConnectionState.DISCONNECTED
        self.connects = 0
        self.stalls = 0
        self.decode_errors = 0
        self.heartbeats = 0
        self.last_message_monotonic = 0.0

    @property
    def wanted(self) -> dict[int, KiteMode]:
        return dict(self._wanted)

    def set_wanted(self, wanted: Mapping[int, KiteMode]) -> None:
        """Make this connection's upstream set equal `wanted`; connects lazily, closes when empty
        unless `keep_open`."""
        self._wanted = dict(wanted)
        self._dirty.set()
        if self._should_run() and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.label}-run")

    async def close(self) -> None:
        self._closing = True
        self._dirty.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self.state = ConnectionState.CLOSED

    def _should_run(self) -> bool:
        return not self._closing and (self.keep_open or bool(self._wanted))

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state

    async def _run(self) -> None:
        await run_with_reconnect(
            self._session,
            backoff=self._backoff,
            refresh_credentials=self._refresh,
            should_run=self._should_run,
            on_state=self._set_state,
            label=self.label,
        )
        if not self._closing:
            self.state = ConnectionState.DISCONNECTED

    async def _session(self) -> None:
        try:
            ws = await connect(
                self._endpoint(),
                additional_headers=KITE_HEADERS,
                open_timeout=self._open_timeout,
                close_timeout=2.0,
                max_size=1 << 22,
                compression=None,
                logger=_wire_log,
            )
        except InvalidStatus as exc:
            raise handshake_error(exc) from None
        except InvalidURI:
            raise BrokerError("invalid Kite WebSocket URL (check ws_url)") from None  # the URI holds the token
        self.connects += 1
        self._sent = {}
        self._dirty.set()
        self.state = ConnectionState.CONNECTED
        log.info("%s: connected (connect #%d)", self.label, self.connects)
        watchdog = StallWatchdog(self._stall_timeout, lambda: self._on_stall(ws))
        watchdog.start()
        sync = asyncio.get_running_loop().create_task(self._sync(ws), name=f"{self.label}-sync")
        try:
            async for message in ws:
                watchdog.feed()
                self.last_message_monotonic = time.monotonic()
                if isinstance(message, bytes):
                    self._on_binary(message)
                else:
                    self._on_text(message)
        finally:
            await watchdog.stop()
            sync.cancel()
            await asyncio.wait([sync])
            if (
                not sync.cancelled()
                and (error := sync.exception()) is not None
                and not isinstance(error, ConnectionClosed)
            ):
                log.warning("%s: subscription sync failed: %r", self.label, error)
            await ws.close()

    def _on_stall(self, ws: ClientConnection) -> None:
        self.stalls += 1
        log.warning("%s: nothing received for %.1f s; forcing a reconnect", self.label, self._stall_timeout)
        ws.transport.abort()

    def _on_binary(self, message: bytes) -> None:
        if codec.is_heartbeat(message):
            self.heartbeats += 1
            return
        try:
            packets = codec.decode_frame(message)
        except KiteCodecError as exc:
            self.decode_errors += 1
            log.debug("%s: undecodable frame of %d bytes: %s", self.label, len(message), exc)
            return
        if packets:
            self._on_packets(packets, int(time.time() * 1000))

    def _on_text(self, message: str) -> None:
        try:
            parsed = codec.parse_text(message)
        except KiteCodecError as exc:
            self.decode_errors += 1
            log.debug("%s: undecodable text frame: %s", self.label, exc)
            return
        if isinstance(parsed, ErrorMessage):
            log.warning("%s: broker error: %s", self.label, parsed.message)
        elif isinstance(parsed, OrderUpdate):
            log.debug("%s: order update ignored by the market-data feed", self.label)
        else:
            log.info("%s: broker %s message: %s", self.label, parsed.type, parsed.data)

    async def _sync(self, ws: ClientConnection) -> None:
        """Send batched requests whenever the wanted set changes; close when nothing is wanted."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not self._wanted and not self.keep_open:
                await ws.close()
                return
            wanted = dict(self._wanted)
            for message in diff_requests(self._sent, wanted):
                await ws.send(message.decode())
            self._sent = wanted
