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
import dataclasses
import json
import logging
import secrets
import ssl
from collections.abc import Iterable

import msgspec
import pyotp
from aiohttp import WSMsgType, web

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import Action, AngelCodecError, ErrorCodes, SubscriptionMode
from openalgo_proxy.brokers.angel.instruments import EXCHANGE_TYPES, MASTER_PATH
from openalgo_proxy.brokers.angel.login import LOGIN_PATH, REFRESH_PATH, AngelCredentials, strip_bearer
from openalgo_proxy.brokers.angel.orders import ORDER_PATH
from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.market import SIMULATED, UNIVERSE, Listing, deeper_side, round_to_tick
from openalgo_proxy.brokers.simkit import SimClient, SimulatorServer, common_arguments, serve_until_cancelled
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
        row = {"token": lst.angel_token, "symbol": lst.symbol, "name": lst.name or lst.symbol, "expiry": lst.expiry}
        row |= {"strike": "-1.000000", "lotsize": str(lst.lot_size), "instrumenttype": lst.instrument_type}
        row |= {"exch_seg": lst.exchange, "tick_size": f"{lst.tick_size * 100:.6f}"}
        if lst.is_index:  # named by `name`; the trading symbol is the long name
            row |= {"symbol": (lst.name or lst.symbol).title(), "name": lst.symbol, "strike": "0.000000"}
            row |= {"lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": lst.exchange.removesuffix("_INDEX")}
        elif lst.exchange in ("NSE", "BSE"):
            row |= {"symbol": f"{lst.symbol}-EQ", "name": lst.symbol, "instrumenttype": ""}
        elif lst.is_option:  # Angel gives strikes in paise
            row |= {"strike": f"{lst.strike * 100:.6f}"}
        rows.append(row)
    return rows


class AngelClient(SimClient):
    """One accepted SmartStream connection: `subs` maps (exchange type, token) -> subscribed modes."""

    @property
    def pairs(self) -> dict[Key, set[int]]:
        return self.subs

    @property
    def client_code(self) -> str:
        return self.account

    @property
    def pair_count(self) -> int:
        return sum(len(modes) for modes in self.subs.values())


class AngelSimulator(SimulatorServer):
    """In-process Angel server: `await start()`, use `.ws_url` / `.api_url` / `.instruments_url`, `await stop()`."""

    ws_path = WS_PATH
    label = "angel simulator"

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
        super().__init__(
            host,
            port,
            ticks_per_second=ticks_per_second,
            seed=seed,
            listings=listings,
            max_connections=max_connections,
            ssl_context=ssl_context,
        )
        self.api_key = api_key
        self.client_code = client_code
        self.pin = pin
        self.totp_secret = totp_secret
        self.max_pairs = max_pairs
        self.listings: dict[Key, Listing] = {
            (int(EXCHANGE_TYPES[lst.exchange]), lst.angel_token): lst for lst in listings
        }
        self._master = master_records(listings)
        self._jwts: set[str] = {jwt_token} if jwt_token else set()
        self._feed_tokens: set[str] = {feed_token} if feed_token else set()
        self._refresh_tokens: set[str] = set()
        self._seq: dict[Key, int] = {}
        self.refuse_logins = False  # fault switch of the REST login
        self.order_sockets: list[web.WebSocketResponse] = []
        # counters
        self.login_attempts = 0
        self.logins = 0
        self.refreshes = 0
        self.requests = 0
        self.errors_sent = 0
        self.packets_sent = 0
        self.pings = 0
        self.last_sent: dict[tuple[int, str, int], bytes] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get(ORDER_PATH, self._orders_handler)
        app.router.add_post(LOGIN_PATH, self._login)
        app.router.add_post(REFRESH_PATH, self._refresh)
        app.router.add_get(MASTER_PATH, self._master_handler)

    def new_client(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> AngelClient:
        return AngelClient(ident, account, request, ws)

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

    def _angel_clients(self) -> list[AngelClient]:
        return [c for c in self.clients.values() if isinstance(c, AngelClient)]

    def subscriptions_per_connection(self) -> list[int]:
        return [client.pair_count for client in self._angel_clients()]

    def subscribed(self) -> set[tuple[int, str, int]]:
        """Every (exchange type, token, mode) subscribed on any connection."""
        return {(k[0], k[1], m) for c in self._angel_clients() for k, modes in c.pairs.items() for m in modes}

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        return {
            (lst.exchange, lst.symbol) for c in self._angel_clients() for k in c.pairs if (lst := self.listings.get(k))
        }

    # -- faults -----------------------------------------------------------------------------

    def expire_credentials(self) -> None:
        """Invalidate every issued session token (a new day): handshakes need a fresh login."""
        self._jwts.clear()
        self._feed_tokens.clear()
        self._refresh_tokens.clear()

    expire_tokens = expire_credentials

    def secrets(self) -> list[str]:
        return [self.pin, self.totp_secret, *self._jwts, *self._feed_tokens, *self._refresh_tokens]

    def malformed_frame(self) -> bytes:
        return b"\x03\x01RELIANCE-truncated"

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

    async def _orders_handler(self, request: web.Request) -> web.StreamResponse:
        """The order-status socket: Bearer JWT, AB00 ack, `ping` -> `pong`, then `publish_order` events."""
        if strip_bearer(request.headers.get("Authorization", "")) not in self._jwts or self.reject_handshakes:
            return web.Response(status=401, text="Invalid Token")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.order_sockets.append(ws)
        try:
            await ws.send_str(json.dumps({"user-id": self.client_code, "status-code": "200", "order-status": "AB00"}))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping" and not self.mute:
                    await ws.send_str("pong")
        finally:
            self.order_sockets.remove(ws)
        return ws

    async def publish_order(self, code: str, order: dict[str, object]) -> None:
        """An order event of this account to every order-status socket (`code`: AB01..AB11)."""
        message = {"user-id": self.client_code, "status-code": "200", "order-status": code, "orderData": order}
        for ws in list(self.order_sockets):
            await ws.send_str(json.dumps(message))

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

    def authorize(self, request: web.Request) -> str | web.Response:
        error = self._handshake_error(request)
        if error is not None:
            return web.Response(status=401, headers={"x-error-message": error}, text=error)
        return request.headers.get("x-client-code") or request.query.get("clientCode", "")

    def too_many(self, account: str) -> web.Response:
        message = "Connection Limit Exceeded"
        return web.Response(status=429, headers={"x-error-message": message}, text=message)

    async def on_binary(self, client: SimClient, data: bytes) -> None:
        await self._send_error(client, ErrorCodes.INVALID_REQUEST, "")

    async def _send_error(self, client: SimClient, code: str, correlation_id: str) -> None:
        self.errors_sent += 1
        if not self.mute:
            await self.send(client, codec.encode_error(code, correlation_id))

    async def on_text(self, client: SimClient, text: str) -> None:
        assert isinstance(client, AngelClient)
        if text == codec.HEARTBEAT:
            self.pings += 1
            if not self.mute:
                await self.send(client, codec.HEARTBEAT_REPLY)
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
                await self.send(client, self._encode(key, listing, tick, mode))

    # -- market -------------------------------------------------------------------------------

    def _encode(self, key: Key, listing: Listing, tick: Tick, mode: int) -> bytes:
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        week = (
            round_to_tick(listing.price * 1.3, listing.tick_size),
            round_to_tick(listing.price * 0.7, listing.tick_size),
        )
        if mode == SubscriptionMode.DEPTH_20:  # twenty levels a side: the book, then one tick apart
            bids = deeper_side(tick.bids, codec.DEPTH_20_LEVELS, listing.tick_size, True, listing.lot_size)
            asks = deeper_side(tick.asks, codec.DEPTH_20_LEVELS, listing.tick_size, False, listing.lot_size)
            tick = msgspec.structs.replace(tick, bids=bids, asks=asks)
        packet = codec.packet_from_tick(tick, mode, key[0], key[1], 0 if listing.is_index else seq, week)
        if isinstance(packet, codec.MarketPacket) and packet.last_traded_timestamp:
            packet.last_traded_timestamp //= 1000  # Angel sends the last trade time in epoch seconds
        data = self.wire(packet)
        self.last_sent[(key[0], key[1], mode)] = data
        return data

    def wire(self, packet: codec.AngelPacket) -> bytes:
        """The bytes of one packet (a SmartStream-family broker with other units overrides this)."""
        return codec.encode_packet(packet)

    async def on_tick(self, now_ms: int) -> None:
        now = now_ms
        wanted: dict[Key, dict[int, list[AngelClient]]] = {}
        for client in self._angel_clients():
            for key, modes in client.pairs.items():
                by_mode = wanted.setdefault(key, {})
                for mode in modes:
                    by_mode.setdefault(mode, []).append(client)
        for key, by_mode in wanted.items():
            listing = self.listings.get(key)
            if listing is None:
                continue
            tick = self.market.advance(listing.exchange, listing.symbol, now)
            for mode, clients in by_mode.items():
                data = self._encode(key, listing, tick, mode)
                for client in clients:
                    self.packets_sent += 1
                    await self.send(client, data)


def simulator_for(options: FeedOptions) -> AngelSimulator:
    """The simulator a local feed starts (`angel-simulator`): the simulated universe with its option
    series (what the chain service prices by default)."""
    return AngelSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed, listings=SIMULATED)


def adapter_for(sim: AngelSimulator, options: FeedOptions) -> BrokerAdapter:
    """The production adapter logged in to `sim`, with the feed's other options."""
    from openalgo_proxy.brokers.angel.adapter import AngelAdapter

    local = dataclasses.replace(
        options, ws_url=sim.ws_url, api_url=sim.api_url, instruments=sim.instruments_url, cache_dir=None
    )
    return AngelAdapter(local, sim.credentials())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common_arguments(parser, 8766)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="API key the simulator accepts")
    parser.add_argument("--client-code", default=DEFAULT_CLIENT_CODE, help="client code the simulator accepts")
    parser.add_argument("--pin", default=DEFAULT_PIN, help="PIN (login password) the simulator accepts")
    parser.add_argument("--totp-secret", default=DEFAULT_TOTP_SECRET, help="base32 TOTP secret the simulator checks")
    parser.add_argument("--jwt-token", default=None, help="a static JWT accepted at the handshake")
    parser.add_argument("--feed-token", default=None, help="a static feed token accepted at the handshake")


async def serve(args: argparse.Namespace) -> None:
    """`openalgo-proxy simulate angel`: serve until cancelled."""
    names = ("api_key", "client_code", "pin", "totp_secret", "jwt_token", "feed_token", "ticks_per_second", "seed")
    sim = AngelSimulator(args.host, args.port, **{name: getattr(args, name) for name in names})
    where = f"ws {sim.ws_url}, login {sim.api_url}{LOGIN_PATH}, master {sim.instruments_url}, client {sim.client_code}"
    await serve_until_cancelled(sim, where)
