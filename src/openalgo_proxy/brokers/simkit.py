"""The simulator kit: what every broker simulator shares, so a new one writes only its wire protocol.

A simulator is one aiohttp server on one loopback port. The kit owns:
- the lifecycle (`start`/`stop`, `async with`), URLs, TLS for certificate tests;
- the simulated market (`brokers.market`: one table of instruments, so every simulator lists the
  same market) and a drift-corrected market loop calling `on_tick(now_ms)`;
- the accepted connections, the per-account connection cap (`too_many`), server heartbeats;
- the fault switches, the same for every simulator: `mute` (send nothing, answer no ping),
  `heartbeats_only` (a quiet market), `reject_handshakes` (refuse every credential),
  `drop_connections()` (cut TCP without a close frame), `expire_credentials()`, `send_malformed()`;
  and one control interface over HTTP, `GET/POST /_simulator` (JSON), for simulators in another
  process;
- hooks for the four authentication kinds: `authorize(request)` reads the query string or the
  headers; `redirect(request)` answers a handshake with HTTP 302 to the real WebSocket URL;
  `authenticate(client, message)` checks a first JSON or binary frame when `first_frame_auth`.
The broker subclass supplies the routes of its REST side, the hooks, and `on_text`/`on_binary`.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import logging
import ssl
import time
from collections import Counter
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from openalgo_proxy.brokers.market import UNIVERSE, Listing, SimulatedMarket
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CONTROL_PATH = "/_simulator"
SWITCHES = ("mute", "heartbeats_only", "reject_handshakes")


class SimClient:
    """One accepted WebSocket connection; `subs` is the broker's subscription state for it."""

    def __init__(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.ident = ident
        self.account = account
        self.request = request
        self.ws = ws
        self.subs: dict[Any, Any] = {}
        self.authenticated = False
        self.frames_sent = 0


class SimulatorServer(abc.ABC):
    """Base of every broker simulator. `await start()`, use `.ws_url`, `await stop()`."""

    #: where the WebSocket is served
    ws_path: ClassVar[str] = "/"
    #: the server heartbeat frame sent every `heartbeat_interval` (None: the broker sends none)
    heartbeat: ClassVar[bytes | str | None] = None
    #: the first client frame must authenticate (Noren, Kotak, Fyers style)
    first_frame_auth: ClassVar[bool] = False
    #: name in logs
    label: ClassVar[str] = "simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ticks_per_second: float = 2.0,
        seed: int | None = None,
        listings: tuple[Listing, ...] = UNIVERSE,
        max_connections: int = 3,
        heartbeat_interval: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # serve wss:// and https:// (tests of certificate checks)
        self.ticks_per_second = ticks_per_second
        self.max_connections = max_connections
        self.heartbeat_interval = heartbeat_interval
        self.market = SimulatedMarket(listings, seed=seed)
        # fault switches
        self.mute = False  # send nothing at all, answer no ping (a stalled upstream)
        self.heartbeats_only = False  # heartbeats and answers but no ticks (a quiet market)
        self.reject_handshakes = False  # refuse every credential (HTTP 401/403 per broker)
        # counters (pings: WebSocket protocol pings; some SDKs put a heartbeat in the payload)
        self.handshake_attempts = self.handshake_rejections = self.connections_total = 0
        self.heartbeats_sent = self.pings_received = 0
        self.rejections: Counter[int] = Counter()  # HTTP status -> count
        self.last_ping_payload = b""
        self.clients: dict[int, SimClient] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- broker hooks ------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:  # noqa: B027 - optional hook
        """Add the broker's REST routes (login, instrument master)."""

    @abc.abstractmethod
    def authorize(self, request: web.Request) -> str | web.Response:
        """The account a handshake authenticates as (query string or headers), or the refusal to send."""

    def too_many(self, account: str) -> web.Response:
        """The answer to a connection past the per-account cap."""
        return web.Response(status=429, text="Connection Limit Exceeded")

    def redirect(self, request: web.Request) -> str | None:
        """Header + redirect authentication: the URL to send this handshake to, or None to serve it."""
        return None

    async def authenticate(self, client: SimClient, message: str | bytes) -> bool:
        """First-frame authentication: whether `message` (the client's first frame) is valid."""
        return True

    async def on_text(self, client: SimClient, text: str) -> None:  # noqa: B027 - optional hook
        """A client's text frame (requests)."""

    async def on_binary(self, client: SimClient, data: bytes) -> None:  # noqa: B027 - optional hook
        """A client's binary frame."""

    @abc.abstractmethod
    async def on_tick(self, now_ms: int) -> None:
        """The market loop's beat: advance and send every subscribed instrument."""

    @abc.abstractmethod
    def expire_credentials(self) -> None:
        """Every credential issued so far stops working (a new trading day)."""

    @abc.abstractmethod
    def subscribed_instruments(self) -> set[tuple[str, str]]:
        """(exchange, symbol) of every instrument subscribed on any connection, in the market's names."""

    def secrets(self) -> list[str]:
        """Every credential value this simulator accepts or issued (tests check none is ever logged)."""
        return []

    def malformed_frame(self) -> bytes:
        """A frame the broker's client must count as malformed and survive."""
        return b"\x00\x01\x02"

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.ws_path, self._ws_handler)
        app.router.add_get(CONTROL_PATH, self._control)
        app.router.add_post(CONTROL_PATH, self._control)
        self.routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._market_loop(), name=f"{self.label}-market")]
        if self.heartbeat is not None:
            self._tasks.append(loop.create_task(self._heartbeat_loop(), name=f"{self.label}-heartbeat"))
        log.info("%s listening on %s", self.label, self.ws_url)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        for client in list(self.clients.values()):
            try:
                await asyncio.wait_for(client.ws.close(code=1001, message=b"simulator stopping"), timeout=0.5)
            except (OSError, TimeoutError, RuntimeError) as exc:
                log.debug("%s: closing client %d: %s", self.label, client.ident, exc)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http") + self.ws_path

    @property
    def connection_count(self) -> int:
        return len(self.clients)

    # -- faults ------------------------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Cut every connection abruptly (no close frame), as a network failure would."""
        transports = [t for client in self.clients.values() if (t := client.request.transport) is not None]
        for transport in transports:
            transport.abort()
        return len(transports)

    async def send_malformed(self, data: bytes | None = None) -> None:
        for client in list(self.clients.values()):
            await self.send(client, self.malformed_frame() if data is None else data)

    def control_state(self) -> dict[str, Any]:
        shown = (*SWITCHES, "connections_total", "handshake_attempts", "handshake_rejections")
        return {name: getattr(self, name) for name in shown} | {"connections": self.connection_count}

    async def _control(self, request: web.Request) -> web.Response:
        """`POST {"mute": true, "drop": true, "expire": true, "malformed": true}`; GET reads the state."""
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "body must be a JSON object"}, status=400)
            if not isinstance(body, dict) or not set(body) <= {*SWITCHES, "drop", "expire", "malformed"}:
                return web.json_response({"error": f"keys: {', '.join(SWITCHES)}, drop, expire, malformed"}, status=400)
            for name in set(SWITCHES) & body.keys():
                setattr(self, name, bool(body[name]))
            if body.get("expire"):
                self.expire_credentials()
            if body.get("malformed"):
                await self.send_malformed()
            if body.get("drop"):
                self.drop_connections()
        return web.json_response(self.control_state())

    # -- WebSocket ---------------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        self.handshake_attempts += 1
        if (location := self.redirect(request)) is not None:
            raise web.HTTPFound(location)
        verdict = self.authorize(request)
        if isinstance(verdict, web.Response):
            return self._refuse(verdict)
        if sum(1 for c in self.clients.values() if c.account == verdict) >= self.max_connections:
            return self._refuse(self.too_many(verdict))
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        self.connections_total += 1
        client = self.new_client(self.connections_total, verdict, request, ws)  # idents count accepted clients
        client.authenticated = not self.first_frame_auth
        self.clients[client.ident] = client
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    self.pings_received += 1
                    self.last_ping_payload = bytes(msg.data)
                    if not self.mute:
                        await ws.pong(msg.data)
                    continue
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                if not client.authenticated:
                    client.authenticated = await self.authenticate(client, msg.data)
                    if not client.authenticated:
                        self.rejections[4001] += 1
                        await ws.close(code=4001, message=b"authentication failed")
                        break
                    continue
                handler = self.on_text if msg.type == WSMsgType.TEXT else self.on_binary
                await handler(client, msg.data)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: client %d ended: %s", self.label, client.ident, exc)
        finally:
            self.clients.pop(client.ident, None)
        return ws

    def new_client(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> SimClient:
        return SimClient(ident, account, request, ws)

    def _refuse(self, response: web.Response) -> web.Response:
        self.handshake_rejections += 1
        self.rejections[response.status] += 1
        return response

    async def send(self, client: SimClient, data: bytes | str) -> None:
        if client.ws.closed:
            return
        try:
            await (client.ws.send_bytes(data) if isinstance(data, bytes) else client.ws.send_str(data))
            client.frames_sent += 1
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: send to client %d failed: %s", self.label, client.ident, exc)

    # -- loops -------------------------------------------------------------------------------------

    async def _market_loop(self) -> None:
        period = 1.0 / self.ticks_per_second if self.ticks_per_second > 0 else 3600.0
        next_at = time.monotonic()
        while True:
            next_at = max(next_at + period, time.monotonic())  # late: the next beat is now, not a burst
            await asyncio.sleep(next_at - time.monotonic())
            if self.mute or self.heartbeats_only or not self.clients:
                continue
            await self.on_tick(int(time.time() * 1000))

    async def _heartbeat_loop(self) -> None:
        assert self.heartbeat is not None
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if self.mute:
                continue
            for client in list(self.clients.values()):
                await self.send(client, self.heartbeat)
                self.heartbeats_sent += 1


def common_arguments(parser: argparse.ArgumentParser, port: int) -> None:
    """The flags every `openalgo-proxy simulate NAME` has."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"listen port (default {port})")
    parser.add_argument("--ticks-per-second", type=float, default=2.0, help="ticks per instrument per second")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the simulated market")


async def serve_until_cancelled(simulator: SimulatorServer, description: str) -> None:
    """Start `simulator`, log where it serves (`description`, no secrets), serve until cancelled."""
    async with simulator:
        log.info("%s: %s", simulator.label, description)
        await asyncio.Event().wait()
