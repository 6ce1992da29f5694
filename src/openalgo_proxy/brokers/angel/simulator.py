"""A local Angel One SmartAPI server with a live simulated market, byte-exact on the wire.

One aiohttp server, one port:
- `GET /smart-stream`: SmartStream WebSocket 2.0 (handshake headers or query params enforced; HTTP 401
  with `x-error-message` otherwise), subscribe/unsubscribe JSON, binary packets of every mode,
  text `ping` -> `pong`, protocol pings answered, 1000 (token, mode) pairs per connection (E1002),
  3 connections per client code (more are refused with HTTP 429).
- `POST /rest/auth/angelbroking/user/v1/loginByPassword`: clientcode, PIN and TOTP checked.
- `POST /rest/auth/angelbroking/jwt/v1/generateTokens`: refresh with the refresh token.
- `GET /OpenAPI_File/files/OpenAPIScripMaster.json`: the instrument master of the simulated universe.

Fault switches for tests: `mute`, `heartbeats_only`, `reject_handshakes`, `refuse_logins`,
`drop_connections()`, `expire_tokens()`, `send_malformed()`.
One market loop ticks every subscribed instrument `ticks_per_second` times a second, encodes each
packet once per mode and writes the same bytes to every subscribed connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyotp
from aiohttp import WSMsgType, web

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import Action, AngelCodecError, ErrorCodes, SubscriptionMode
from openalgo_proxy.brokers.angel.instruments import EXCHANGE_TYPES, MASTER_PATH
from openalgo_proxy.brokers.angel.login import LOGIN_PATH, REFRESH_PATH, AngelCredentials, strip_bearer
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import UNIVERSE, Listing, SimulatedMarket, round_to_tick
from openalgo_proxy.model import Tick

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sim-api-key"
DEFAULT_CLIENT_CODE = "SIM001"
DEFAULT_PIN = "1234"
DEFAULT_TOTP_SECRET = "OPENALGOPROXYSIMULATOR23"  # base32; the simulator's published test secret
WS_PATH = "/smart-stream"
MAX_PAIRS = 1000
MAX_CONNECTIONS = 3
MAX_DEPTH_20_TOKENS = 50

Key = tuple[int, str]  # (exchange type, token)


def master_records(listings: Iterable[Listing] = UNIVERSE) -> list[dict[str, str]]:
    """Angel instrument master rows (all values strings) for the simulated universe."""
    rows: list[dict[str, str]] = []
    for lst in listings:
        tick_paise = f"{lst.tick_size * 100:.6f}"
        if lst.is_index:
            rows.append(
                {
                    "token": lst.angel_token,
                    "symbol": (lst.name or lst.symbol).title(),
                    "name": lst.symbol,
                    "expiry": "",
                    "strike": "0.000000",
                    "lotsize": "1",
                    "instrumenttype": "AMXIDX",
                    "exch_seg": lst.exchange.removesuffix("_INDEX"),
                    "tick_size": tick_paise,
                }
            )
        elif lst.exchange in ("NSE", "BSE"):
            rows.append(
                {
                    "token": lst.angel_token,
                    "symbol": f"{lst.symbol}-EQ",
                    "name": lst.symbol,
                    "expiry": "",
                    "strike": "-1.000000",
                    "lotsize": str(lst.lot_size),
                    "instrumenttype": "",
                    "exch_seg": lst.exchange,
                    "tick_size": tick_paise,
                }
            )
        else:
            rows.append(
                {
                    "token": lst.angel_token,
                    "symbol": lst.symbol,
                    "name": lst.name or lst.symbol,
                    "expiry": lst.expiry,
                    "strike": "-1.000000",
                    "lotsize": str(lst.lot_size),
                    "instrumenttype": lst.instrument_type,
                    "exch_seg": lst.exchange,
                    "tick_size": tick_paise,
                }
            )
    return rows


@dataclass(eq=False)
class SimClient:
    """One accepted SmartStream connection."""

    ident: int
    client_code: str
    ws: web.WebSocketResponse
    request: web.Request
    pairs: dict[Key, set[int]] = field(default_factory=dict)  # key -> subscribed modes

    @property
    def pair_count(self) -> int:
        return sum(len(modes) for modes in self.pairs.values())


class AngelSimulator:
    """In-process Angel server: `await start()`, use `.ws_url` / `.api_url` / `.instruments_url`, `await stop()`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        client_code: str = DEFAULT_CLIENT_CODE,
        pin: str = DEFAULT_PIN,
        totp_secret: str = DEFAULT_TOTP_SECRET,
        jwt_token: str | None = None,
        feed_token: str | None = None,
        ticks_per_second: float = 2.0,
        seed: int | None = None,
        listings: tuple[Listing, ...] = UNIVERSE,
        max_pairs: int = MAX_PAIRS,
        max_connections: int = MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.port = port
        self.api_key = api_key
        self.client_code = client_code
        self.pin = pin
        self.totp_secret = totp_secret
        self.ticks_per_second = ticks_per_second
        self.max_pairs = max_pairs
        self.max_connections = max_connections
        self.market = SimulatedMarket(listings, seed=seed)
        self.listings: dict[Key, Listing] = {
            (int(EXCHANGE_TYPES[lst.exchange]), lst.angel_token): lst for lst in listings
        }
        self._master = master_records(listings)
        self._jwts: set[str] = {jwt_token} if jwt_token else set()
        self._feed_tokens: set[str] = {feed_token} if feed_token else set()
        self._refresh_tokens: set[str] = set()
        self.clients: dict[int, SimClient] = {}
        self._next_client = 0
        self._seq: dict[Key, int] = {}
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        # fault switches
        self.mute = False
        self.heartbeats_only = False
        self.reject_handshakes = False
        self.refuse_logins = False
        # counters
        self.handshake_attempts = 0
        self.handshake_rejections = 0
        self.login_attempts = 0
        self.logins = 0
        self.refreshes = 0
        self.requests = 0
        self.errors_sent = 0
        self.packets_sent = 0
        self.pings = 0
        self.last_sent: dict[tuple[int, str, int], bytes] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(WS_PATH, self._ws_handler)
        app.router.add_post(LOGIN_PATH, self._login)
        app.router.add_post(REFRESH_PATH, self._refresh)
        app.router.add_get(MASTER_PATH, self._master_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._ticker = asyncio.create_task(self._tick_loop(), name="angel-sim-market")
        log.info("angel simulator listening on %s", self.ws_url)

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        for client in list(self.clients.values()):
            try:
                await asyncio.wait_for(client.ws.close(code=1001, message=b"simulator stopping"), timeout=0.5)
            except (OSError, TimeoutError, RuntimeError) as exc:
                log.debug("angel simulator: closing client %d: %s", client.ident, exc)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AngelSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}{WS_PATH}"

    @property
    def api_url(self) -> str:
        return self.base_url

    @property
    def instruments_url(self) -> str:
        return self.base_url + MASTER_PATH

    def credentials(self) -> AngelCredentials:
        """Credentials that log in here (PIN + TOTP)."""
        return AngelCredentials(self.api_key, self.client_code, pin=self.pin, totp_secret=self.totp_secret)

    def feed_options(self, **overrides: object) -> FeedOptions:
        values: dict[str, object] = {
            "ws_url": self.ws_url,
            "api_url": self.api_url,
            "instruments": self.instruments_url,
        }
        values.update(overrides)
        return FeedOptions(**values)  # type: ignore[arg-type]

    # -- observability for tests ------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return len(self.clients)

    def subscriptions_per_connection(self) -> list[int]:
        return [client.pair_count for client in self.clients.values()]

    def subscribed(self) -> set[tuple[int, str, int]]:
        """Every (exchange type, token, mode) subscribed on any connection."""
        return {(k[0], k[1], m) for c in self.clients.values() for k, modes in c.pairs.items() for m in modes}

    # -- faults -----------------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Cut every connection abruptly (no close frame), as a network failure would."""
        dropped = 0
        for client in list(self.clients.values()):
            transport = client.request.transport
            if transport is not None:
                transport.abort()
                dropped += 1
        return dropped

    def expire_tokens(self) -> None:
        """Invalidate every issued session token (a new day): handshakes need a fresh login."""
        self._jwts.clear()
        self._feed_tokens.clear()
        self._refresh_tokens.clear()

    async def send_malformed(self, data: bytes = b"\x03\x01RELIANCE-truncated") -> None:
        for client in list(self.clients.values()):
            await self._send(client, data)

    # -- REST -------------------------------------------------------------------------------

    @staticmethod
    def _fail(message: str, code: str) -> web.Response:
        return web.json_response({"status": False, "message": message, "errorcode": code, "data": None})

    def _issue(self) -> dict[str, str]:
        jwt = "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(24)
        feed = secrets.token_urlsafe(18)
        refresh = "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(24)
        self._jwts.add(jwt)
        self._feed_tokens.add(feed)
        self._refresh_tokens.add(refresh)
        return {"jwtToken": jwt, "refreshToken": refresh, "feedToken": feed}

    async def _login(self, request: web.Request) -> web.Response:
        self.login_attempts += 1
        if request.headers.get("X-PrivateKey") != self.api_key:
            return self._fail("Invalid API Key", "AG8004")
        try:
            body = await request.json()
        except ValueError:
            return self._fail("Invalid request", "AB1000")
        if not isinstance(body, dict):
            return self._fail("Invalid request", "AB1000")
        if self.refuse_logins:
            return self._fail("Invalid totp", "AB1050")
        if body.get("clientcode") != self.client_code or body.get("password") != self.pin:
            return self._fail("Invalid clientcode or password", "AB1007")
        totp = str(body.get("totp", ""))
        if not pyotp.TOTP(self.totp_secret).verify(totp, valid_window=1):
            return self._fail("Invalid totp", "AB1050")
        self.logins += 1
        return web.json_response({"status": True, "message": "SUCCESS", "errorcode": "", "data": self._issue()})

    async def _refresh(self, request: web.Request) -> web.Response:
        self.refreshes += 1
        try:
            body = await request.json()
        except ValueError:
            return self._fail("Invalid request", "AB1000")
        if self.refuse_logins or not isinstance(body, dict) or body.get("refreshToken") not in self._refresh_tokens:
            return self._fail("Invalid refresh token", "AB8051")
        jwt = strip_bearer(request.headers.get("Authorization", ""))
        self._jwts.discard(jwt)
        self._refresh_tokens.discard(body["refreshToken"])
        return web.json_response({"status": True, "message": "SUCCESS", "errorcode": "", "data": self._issue()})

    async def _master_handler(self, request: web.Request) -> web.Response:
        return web.json_response(self._master)

    # -- WebSocket ----------------------------------------------------------------------------

    def _handshake_error(self, request: web.Request) -> str | None:
        headers = request.headers
        query = request.query
        client_code = headers.get("x-client-code") or query.get("clientCode", "")
        feed_token = headers.get("x-feed-token") or query.get("feedToken", "")
        api_key = headers.get("x-api-key") or query.get("apiKey", "")
        auth = headers.get("Authorization")
        if self.reject_handshakes:
            return "Invalid Header - Invalid Auth token"
        header_auth = auth is not None or "clientCode" not in query  # browsers use query params, no JWT
        if header_auth and strip_bearer(auth or "") not in self._jwts:
            return "Invalid Header - Invalid Auth token"
        if client_code != self.client_code:
            return "Invalid Header - Invalid Client Code"
        if api_key != self.api_key:
            return "Invalid Header - Invalid API Key"
        if feed_token not in self._feed_tokens:
            return "Invalid Header - Invalid Feed Token"
        return None

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        self.handshake_attempts += 1
        error = self._handshake_error(request)
        if error is not None:
            self.handshake_rejections += 1
            return web.Response(status=401, headers={"x-error-message": error}, text=error)
        client_code = request.headers.get("x-client-code") or request.query.get("clientCode", "")
        if sum(1 for c in self.clients.values() if c.client_code == client_code) >= self.max_connections:
            self.handshake_rejections += 1
            message = "Connection Limit Exceeded"
            return web.Response(status=429, headers={"x-error-message": message}, text=message)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        self._next_client += 1
        client = SimClient(self._next_client, client_code, ws, request)
        self.clients[client.ident] = client
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(client, msg.data)
                elif msg.type == WSMsgType.PING:
                    if not self.mute:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._send_error(client, ErrorCodes.INVALID_REQUEST, "")
        except (ConnectionError, RuntimeError) as exc:
            log.debug("angel simulator: client %d ended: %s", client.ident, exc)
        finally:
            self.clients.pop(client.ident, None)
        return ws

    async def _send(self, client: SimClient, data: bytes | str) -> None:
        if client.ws.closed:
            return
        try:
            if isinstance(data, bytes):
                await client.ws.send_bytes(data)
            else:
                await client.ws.send_str(data)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("angel simulator: send to client %d failed: %s", client.ident, exc)

    async def _send_error(self, client: SimClient, code: str, correlation_id: str) -> None:
        self.errors_sent += 1
        if not self.mute:
            await self._send(client, codec.encode_error(code, correlation_id))

    async def _on_text(self, client: SimClient, text: str) -> None:
        if text == codec.HEARTBEAT:
            self.pings += 1
            if not self.mute:
                await self._send(client, codec.HEARTBEAT_REPLY)
            return
        self.requests += 1
        try:
            request = codec.decode_request(text)
        except AngelCodecError:
            await self._send_error(client, ErrorCodes.INVALID_REQUEST, "")
            return
        mode = int(request.mode)
        keys = [(etype, token) for etype, tokens in request.tokens.items() for token in tokens]
        if request.action is Action.UNSUBSCRIBE:
            for key in keys:
                modes = client.pairs.get(key)
                if modes is not None:
                    modes.discard(mode)
                    if not modes:
                        del client.pairs[key]
            return
        if mode == SubscriptionMode.DEPTH_20:
            if any(etype != codec.ExchangeType.NSE_CM for etype, _ in keys):
                await self._send_error(client, ErrorCodes.INVALID_REQUEST, request.correlation_id)
                return
            depth_tokens = {k for k, modes in client.pairs.items() if mode in modes} | set(keys)
            if len(depth_tokens) > MAX_DEPTH_20_TOKENS:
                await self._send_error(client, ErrorCodes.LIMIT_EXCEEDED, request.correlation_id)
                return
        new = list(dict.fromkeys(k for k in keys if mode not in client.pairs.get(k, ())))
        if client.pair_count + len(new) > self.max_pairs:
            await self._send_error(client, ErrorCodes.LIMIT_EXCEEDED, request.correlation_id)
            return
        for key in new:
            client.pairs.setdefault(key, set()).add(mode)
        if self.mute or self.heartbeats_only:
            return
        for key in new:  # the current state at once, as Angel does on subscribe
            listing = self.listings.get(key)
            if listing is not None:
                tick = self.market.snapshot(listing.exchange, listing.symbol)
                await self._send(client, self._encode(key, listing, tick, mode))

    # -- market -------------------------------------------------------------------------------

    def _encode(self, key: Key, listing: Listing, tick: Tick, mode: int) -> bytes:
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        week = (
            round_to_tick(listing.price * 1.3, listing.tick_size),
            round_to_tick(listing.price * 0.7, listing.tick_size),
        )
        packet = codec.packet_from_tick(tick, mode, key[0], key[1], 0 if listing.is_index else seq, week)
        if isinstance(packet, codec.MarketPacket) and packet.last_traded_timestamp:
            packet.last_traded_timestamp //= 1000  # Angel sends the last trade time in epoch seconds
        data = codec.encode_packet(packet)
        self.last_sent[(key[0], key[1], mode)] = data
        return data

    async def _tick_loop(self) -> None:
        period = 1.0 / self.ticks_per_second if self.ticks_per_second > 0 else 3600.0
        next_at = time.monotonic()
        while True:
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()
                await asyncio.sleep(0)
            if self.mute or self.heartbeats_only or not self.clients:
                continue
            await self._tick_once()

    async def _tick_once(self) -> None:
        wanted: dict[Key, dict[int, list[SimClient]]] = {}
        for client in list(self.clients.values()):
            for key, modes in client.pairs.items():
                by_mode = wanted.setdefault(key, {})
                for mode in modes:
                    by_mode.setdefault(mode, []).append(client)
        now = int(time.time() * 1000)
        for key, by_mode in wanted.items():
            listing = self.listings.get(key)
            if listing is None:
                continue
            tick = self.market.advance(listing.exchange, listing.symbol, now)
            for mode, clients in by_mode.items():
                data = self._encode(key, listing, tick, mode)
                for client in clients:
                    self.packets_sent += 1
                    await self._send(client, data)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8766, help="port for WebSocket, login and master (default 8766)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="API key the simulator accepts")
    parser.add_argument("--client-code", default=DEFAULT_CLIENT_CODE, help="client code the simulator accepts")
    parser.add_argument("--pin", default=DEFAULT_PIN, help="PIN (login password) the simulator accepts")
    parser.add_argument("--totp-secret", default=DEFAULT_TOTP_SECRET, help="base32 TOTP secret the simulator checks")
    parser.add_argument("--jwt-token", default=None, help="a static JWT accepted at the handshake")
    parser.add_argument("--feed-token", default=None, help="a static feed token accepted at the handshake")
    parser.add_argument("--ticks-per-second", type=float, default=2.0, help="ticks per instrument per second")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the simulated market")


async def serve(args: argparse.Namespace) -> None:
    """`openalgo-proxy simulate angel`: serve until cancelled."""
    sim = AngelSimulator(
        args.host,
        args.port,
        api_key=args.api_key,
        client_code=args.client_code,
        pin=args.pin,
        totp_secret=args.totp_secret,
        jwt_token=args.jwt_token,
        feed_token=args.feed_token,
        ticks_per_second=args.ticks_per_second,
        seed=args.seed,
    )
    await sim.start()
    log.info(
        "angel simulator: ws %s, login %s%s, master %s, client code %s",
        sim.ws_url,
        sim.api_url,
        LOGIN_PATH,
        sim.instruments_url,
        sim.client_code,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
