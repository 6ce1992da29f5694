"""Chain mode: our feed as a client of an unmodified OpenAlgo proxy on a private port.

One WebSocket to the upstream (`--upstream ws://HOST:PORT`, `FeedOptions.ws_url`), authenticated
with `OPENALGO_API_KEY`. Each wanted instrument is subscribed once, in its richest wanted mode, in
bulk frames per mode with the mode in every entry too (OpenAlgo's proxy ignores a top-level mode on
unsubscribe). Only differences are sent; after a reconnect everything wanted is sent again on the
fresh socket, once. Upstream payloads are normalised by codec.to_tick.

The upstream has no symbol list, so the directory comes from a file (`--instruments`: CSV lines
`EXCHANGE,SYMBOL`) or, in drop-in mode, from OpenAlgo's `symtoken` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from openalgo_proxy.brokers.base import (
    AdapterStatus,
    Backoff,
    BrokerAdapter,
    ConnectionState,
    FeedOptions,
    Rejection,
    RejectSink,
    TickSink,
    run_with_reconnect,
)
from openalgo_proxy.brokers.environment import secret
from openalgo_proxy.brokers.openalgo.codec import to_tick
from openalgo_proxy.errors import BrokerAuthError, BrokerError, ConfigError, ErrorCode
from openalgo_proxy.model import Instrument, Mode
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BATCH = 500  # symbols per subscribe frame (well under OpenAlgo's 1 MiB message limit)
AUTH_TIMEOUT = 10.0
Key = tuple[str, str]  # (exchange, symbol)


def load_symbols(source: str) -> dict[str, set[str]]:
    """`EXCHANGE,SYMBOL` per line (a header line and `#` comments are skipped)."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the chain-mode symbol list {source}: {exc.strerror}") from exc
    symbols: dict[str, set[str]] = defaultdict(set)
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0] or parts[0].startswith("#") or parts[0].lower() == "exchange":
            continue
        symbols[parts[0].upper()].add(parts[1])
    if not symbols:
        raise ConfigError(f"the chain-mode symbol list {source} has no EXCHANGE,SYMBOL lines")
    return dict(symbols)


def _ignore(_: object) -> None:
    return None


class ChainAdapter(BrokerAdapter):
    name = "openalgo"

    def __init__(
        self,
        options: FeedOptions,
        *,
        api_key: str | None = None,
        symbols: Mapping[str, Iterable[str]] | None = None,
        backoff: Backoff | None = None,
        stable_after: float = 10.0,
    ) -> None:
        self.options = options
        if not options.ws_url:
            raise ConfigError("chain mode needs the upstream OpenAlgo proxy: --upstream ws://HOST:PORT")
        self.url = options.ws_url
        self._api_key = api_key
        self._symbols = {e: set(s) for e, s in symbols.items()} if symbols is not None else None
        self._backoff = backoff or Backoff(base=0.5, cap=30.0)
        self._stable_after = stable_after
        self._on_tick: TickSink = _ignore
        self._on_reject: RejectSink = _ignore
        self._wanted: dict[Key, tuple[Instrument, Mode]] = {}
        self.sent: dict[Key, Mode] = {}  # what the current upstream socket holds
        self._dirty = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.state = ConnectionState.DISCONNECTED
        self.connects = 0
        self.decode_errors = 0
        self.frames_sent = 0
        self.last_message = 0.0

    # -- BrokerAdapter ---------------------------------------------------------------------------
    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        self._api_key = self._api_key or secret("OPENALGO_API_KEY", "openalgo (chain mode)")
        if self._symbols is None:
            if not self.options.instruments:
                raise ConfigError("chain mode needs a symbol list: --instruments FILE (EXCHANGE,SYMBOL lines)")
            self._symbols = load_symbols(self.options.instruments)
        self._on_tick, self._on_reject = on_tick, on_reject
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openalgo-chain")
        log.info(
            "openalgo chain: upstream %s, %d symbols on %s",
            self.url,
            sum(map(len, self._symbols.values())),
            ", ".join(self.exchanges()),
        )

    def exchanges(self) -> tuple[str, ...]:
        only = self.options.exchanges
        return tuple(sorted(e for e in (self._symbols or {}) if not only or e in only))

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        if exchange not in self.exchanges() or symbol not in (self._symbols or {}).get(exchange, ()):
            return None
        return Instrument(symbol, exchange, f"{exchange}:{symbol}")

    def directory(self) -> Mapping[str, Iterable[str]]:
        symbols = self._symbols or {}
        return {e: sorted(symbols[e]) for e in self.exchanges()}

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        self._wanted = {(i.exchange, i.symbol): (i, Mode(m)) for i, m in wanted.items()}
        self._dirty.set()

    def status(self) -> AdapterStatus:
        return AdapterStatus(
            state=self.state,
            connections=1 if self.state is ConnectionState.CONNECTED else 0,
            subscriptions=len(self.sent),
            reconnects=max(0, self.connects - 1),
            decode_errors=self.decode_errors,
            extra={"upstream": self.url, "wanted": len(self._wanted), "frames_sent": self.frames_sent},
        )

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.state = ConnectionState.CLOSED

    # -- upstream ----------------------------------------------------------------------------------
    def _set_state(self, state: ConnectionState) -> None:
        self.state = state

    async def _run(self) -> None:
        await run_with_reconnect(
            self._serve,
            backoff=self._backoff,
            refresh_credentials=self._no_refresh,
            should_run=lambda: not self._stopping,
            on_state=self._set_state,
            stable_after=self._stable_after,
            label="openalgo-chain",
        )

    async def _no_refresh(self) -> None:
        log.error("openalgo chain: the upstream refused OPENALGO_API_KEY; check the key in OpenAlgo")

    async def _open(self) -> ClientConnection:
        try:
            ws = await connect(self.url, open_timeout=10, max_size=1 << 22, compression=None, close_timeout=2)
        except InvalidStatus as exc:
            raise BrokerError(f"upstream refused the handshake: HTTP {exc.response.status_code}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise BrokerError(f"cannot connect to {self.url}: {exc}") from exc
        try:
            await ws.send(json.dumps({"action": "authenticate", "api_key": self._api_key}))
            async with asyncio.timeout(AUTH_TIMEOUT):
                while True:
                    reply = json.loads(await ws.recv())
                    if isinstance(reply, dict) and reply.get("type") in ("auth", "error"):
                        break
        except (ConnectionClosed, TimeoutError, ValueError) as exc:
            await ws.close()
            raise BrokerError(f"upstream did not answer authenticate: {exc}") from None
        if reply.get("status") != "success":
            await ws.close()
            raise BrokerAuthError(f"upstream refused the API key: {reply.get('message', '')}")
        return ws

    async def _serve(self) -> None:
        ws = await self._open()
        self.connects += 1
        self.sent = {}  # a fresh upstream socket holds nothing
        self._set_state(ConnectionState.CONNECTED)
        log.info("openalgo chain: connected to %s (connect #%d)", self.url, self.connects)
        self._dirty.set()
        reader = asyncio.create_task(self._read(ws), name="openalgo-chain-read")
        syncer = asyncio.create_task(self._sync(ws), name="openalgo-chain-sync")
        try:
            done, _ = await asyncio.wait({reader, syncer}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (reader, syncer):
                task.cancel()
            for task in (reader, syncer):
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
            self.sent = {}
            await ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.last_message = time.monotonic()
                try:
                    message = json.loads(raw)
                except ValueError:
                    self.decode_errors += 1
                    continue
                if isinstance(message, dict):
                    self._handle(message)
        except ConnectionClosed as exc:
            raise BrokerError(f"upstream closed: {exc}") from None

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "market_data":
            tick = to_tick(message)
            if tick is None:
                self.decode_errors += 1
            else:
                self._on_tick(tick)
        elif kind in ("subscribe", "subscription"):
            for entry in message.get("subscriptions") or []:
                if isinstance(entry, dict) and entry.get("status") == "error":
                    self._refused(entry)
        elif kind == "error" or message.get("status") == "error":
            if message.get("symbol") and message.get("exchange"):
                self._refused(message)
            else:
                log.warning("openalgo chain: upstream error %s: %s", message.get("code"), message.get("message"))

    def _refused(self, entry: Mapping[str, Any]) -> None:
        key = (str(entry.get("exchange")), str(entry.get("symbol")))
        wanted = self._wanted.pop(key, None)
        self.sent.pop(key, None)
        if wanted is None:
            return
        code = ErrorCode.SYMBOL_NOT_FOUND if entry.get("code") == "SYMBOL_NOT_FOUND" else ErrorCode.BROKER_UNAVAILABLE
        self._on_reject(Rejection(wanted[0], wanted[1], code, f"upstream: {entry.get('message') or 'refused'}"))

    async def _sync(self, ws: ClientConnection) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            wanted = {key: mode for key, (_, mode) in self._wanted.items()}
            drop: dict[Mode, list[Key]] = defaultdict(list)
            add: dict[Mode, list[Key]] = defaultdict(list)
            for key, mode in self.sent.items():
                if wanted.get(key) != mode:
                    drop[mode].append(key)
            for key, mode in wanted.items():
                if self.sent.get(key) != mode:
                    add[mode].append(key)
            for mode, keys in drop.items():
                await self._send(ws, "unsubscribe", mode, keys)
                for key in keys:
                    self.sent.pop(key, None)
            for mode, keys in add.items():
                await self._send(ws, "subscribe", mode, keys)
                for key in keys:
                    self.sent[key] = mode

    async def _send(self, ws: ClientConnection, action: str, mode: Mode, keys: list[Key]) -> None:
        for start in range(0, len(keys), BATCH):
            entries = [{"exchange": e, "symbol": s, "mode": int(mode)} for e, s in keys[start : start + BATCH]]
            await ws.send(json.dumps({"action": action, "symbols": entries, "mode": int(mode)}))
            self.frames_sent += 1


def create(options: FeedOptions) -> BrokerAdapter:
    """Registry entry point: upstream from --upstream, key from OPENALGO_API_KEY, symbols from --instruments."""
    return ChainAdapter(options)
