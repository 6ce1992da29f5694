"""One upstream SmartStream WebSocket: handshake, heartbeat, stall watchdog, reconnect, resubscribe.

The shell only moves bytes and runs timers: packets are decoded by `codec` and handed to the
adapter's callback. The subscription set is state (`wanted`), not a log of requests: after every
(re)connect the connection subscribes exactly `wanted`, and later changes are sent as diffs,
grouped by (mode, exchange type) into few requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import AngelCodecError, AngelPacket, ErrorReply, SubscriptionMode
from openalgo_proxy.brokers.angel.login import AngelSession
from openalgo_proxy.brokers.base import Backoff, ConnectionState, StallWatchdog, run_with_reconnect
from openalgo_proxy.errors import BrokerAuthError, BrokerError, BrokerRateLimited

log = logging.getLogger(__name__)

WS_URL = "wss://smartapisocket.angelone.in/smart-stream"
HEARTBEAT_INTERVAL = 30.0  # documented text `ping` interval
MAX_TOKENS_PER_REQUEST = 1000

PairKey = tuple[int, str]  # (exchange type, token)
PacketSink = Callable[[AngelPacket], None]
ErrorSink = Callable[[ErrorReply, list[PairKey]], None]

_ids = itertools.count(1)


class StalledError(BrokerError):
    """Nothing was received for the stall timeout; the connection is dropped and reopened."""


def group_requests(
    pairs: Mapping[PairKey, SubscriptionMode],
) -> list[tuple[SubscriptionMode, dict[int, list[str]]]]:
    """Pairs -> one (mode, {exchange type: tokens}) batch per mode, split at MAX_TOKENS_PER_REQUEST."""
    by_mode: dict[SubscriptionMode, list[PairKey]] = {}
    for key, mode in pairs.items():
        by_mode.setdefault(mode, []).append(key)
    out: list[tuple[SubscriptionMode, dict[int, list[str]]]] = []
    for mode in sorted(by_mode):
        keys = sorted(by_mode[mode])
        for start in range(0, len(keys), MAX_TOKENS_PER_REQUEST):
            batch: dict[int, list[str]] = {}
            for etype, token in keys[start : start + MAX_TOKENS_PER_REQUEST]:
                batch.setdefault(etype, []).append(token)
            out.append((mode, batch))
    return out


class AngelConnection:
    """One of the pool's upstream connections. `start()` once, `set_wanted()` any time, `stop()`."""

    def __init__(
        self,
        index: int,
        url: str,
        session: AngelSession,
        on_packet: PacketSink,
        on_error: ErrorSink,
        *,
        stall_timeout: float = 15.0,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        ping_interval: float | None = 20.0,
        open_timeout: float = 10.0,
        backoff: Backoff | None = None,
        stable_after: float = 10.0,
    ) -> None:
        self.index = index
        self.label = f"angel[{index}]"
        self.url = url
        self._session = session
        self._on_packet = on_packet
        self._on_error = on_error
        self.stall_timeout = stall_timeout
        # a quiet market sends nothing but pongs: ping often enough that silence means a stall
        self.heartbeat_interval = min(heartbeat_interval, stall_timeout / 3.0)
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.wanted: dict[PairKey, SubscriptionMode] = {}
        self.sent: dict[PairKey, SubscriptionMode] = {}
        self.state = ConnectionState.DISCONNECTED
        self.connects = 0
        self.decode_errors = 0
        self.last_message = 0.0
        self._dirty = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._refused_generation = 0
        self._requests: OrderedDict[str, list[PairKey]] = OrderedDict()

    def __repr__(self) -> str:
        return f"AngelConnection({self.index}, {self.state.value}, wanted={len(self.wanted)})"

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def set_wanted(self, wanted: Mapping[PairKey, SubscriptionMode]) -> None:
        self.wanted = dict(wanted)
        self._dirty.set()

    def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.label)

    async def stop(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state = ConnectionState.CLOSED
        self.sent = {}

    async def _run(self) -> None:
        await run_with_reconnect(
            self._connect_and_serve,
            backoff=self.backoff,
            refresh_credentials=self._refresh,
            should_run=lambda: not self._closing,
            on_state=self._set_state,
            stable_after=self.stable_after,
            label=self.label,
        )

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state

    async def _refresh(self) -> None:
        await self._session.invalidate(self._refused_generation)

    async def _open(self) -> ClientConnection:
        tokens = await self._session.tokens()
        creds = self._session.credentials
        headers = {
            "Authorization": tokens.jwt_token,
            "x-api-key": creds.api_key,
            "x-client-code": creds.client_code,
            "x-feed-token": tokens.feed_token,
        }
        try:
            return await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                close_timeout=1.0,
                max_size=1 << 20,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            reason = exc.response.headers.get("x-error-message", "")
            if status in (401, 403):
                self._refused_generation = tokens.generation
                raise BrokerAuthError(f"handshake refused: HTTP {status} {reason}".strip()) from None
            if status == 429:
                raise BrokerRateLimited(f"handshake refused: HTTP 429 {reason}".strip()) from None
            raise BrokerError(f"handshake refused: HTTP {status} {reason}".strip()) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise BrokerError(f"cannot connect to {self.url}: {exc}") from exc

    async def _connect_and_serve(self) -> None:
        ws = await self._open()
        self.connects += 1
        self.sent = {}
        self._requests.clear()
        self._set_state(ConnectionState.CONNECTED)
        log.info("%s: connected to %s (connect #%d)", self.label, self.url, self.connects)
        stalled = asyncio.Event()
        watchdog = StallWatchdog(self.stall_timeout, stalled.set)
        watchdog.start()
        self.last_message = watchdog.last
        self._dirty.set()
        tasks = [
            asyncio.create_task(self._read(ws, watchdog), name=f"{self.label}-read"),
            asyncio.create_task(self._heartbeat(ws), name=f"{self.label}-heartbeat"),
            asyncio.create_task(self._sync_loop(ws), name=f"{self.label}-sync"),
            asyncio.create_task(stalled.wait(), name=f"{self.label}-stall"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stalled.is_set():
                ws.transport.abort()
                raise StalledError(f"no message for {self.stall_timeout:g} s")
            for task in done:
                task.result()  # re-raise the failure that ended the connection
        except ConnectionClosed as exc:
            raise BrokerError(f"connection lost: {exc}") from exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await watchdog.stop()
            self.sent = {}
            try:
                await asyncio.wait_for(ws.close(), timeout=1.0)
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.debug("%s: close handshake skipped: %s", self.label, exc)
            ws.transport.abort()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await ws.send(codec.HEARTBEAT)

    async def _sync_loop(self, ws: ClientConnection) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._sync(ws)

    async def _sync(self, ws: ClientConnection) -> None:
        """Send the diff between what the server has (`sent`) and what is wanted."""
        wanted = self.wanted
        remove = {key: mode for key, mode in self.sent.items() if wanted.get(key) != mode}
        add = {key: mode for key, mode in wanted.items() if self.sent.get(key) != mode}
        for mode, tokens in group_requests(remove):
            await ws.send(codec.unsubscribe_request(mode, tokens, self._correlation_id()))
            for etype, values in tokens.items():
                for token in values:
                    self.sent.pop((etype, token), None)
        for mode, tokens in group_requests(add):
            cid = self._correlation_id()
            keys = [(etype, token) for etype, values in tokens.items() for token in values]
            self._requests[cid] = keys
            while len(self._requests) > 256:
                self._requests.popitem(last=False)
            await ws.send(codec.subscribe_request(mode, tokens, cid))
            for key in keys:
                self.sent[key] = mode
        if remove or add:
            log.info("%s: subscribed %d pairs (+%d -%d)", self.label, len(self.sent), len(add), len(remove))

    @staticmethod
    def _correlation_id() -> str:
        return f"oap{next(_ids) % 10_000_000:07d}"

    async def _read(self, ws: ClientConnection, watchdog: StallWatchdog) -> None:
        on_packet = self._on_packet
        async for message in ws:
            watchdog.feed()
            self.last_message = watchdog.last
            if isinstance(message, bytes):
                try:
                    packet = codec.decode_packet(message)
                except AngelCodecError as exc:
                    self.decode_errors += 1
                    if self.decode_errors == 1 or self.decode_errors % 1000 == 0:
                        log.warning(
                            "%s: skipped undecodable packet (%d so far): %s", self.label, self.decode_errors, exc
                        )
                    continue
                on_packet(packet)
            else:
                self._text(message)

    def _text(self, message: str) -> None:
        try:
            reply = codec.decode_text(message)
        except AngelCodecError as exc:
            self.decode_errors += 1
            log.warning("%s: unexpected text frame: %s", self.label, exc)
            return
        if isinstance(reply, ErrorReply):
            keys = self._requests.pop(reply.correlation_id, [])
            for key in keys:
                self.sent.pop(key, None)
            log.warning("%s: broker error %s %s (%d pairs)", self.label, reply.code, reply.message, len(keys))
            self._on_error(reply, keys)

    def info(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "state": self.state.value,
            "subscriptions": len(self.sent),
            "wanted": len(self.wanted),
            "reconnects": self.reconnects,
            "age": round(time.monotonic() - self.last_message, 3) if self.last_message else None,
        }
