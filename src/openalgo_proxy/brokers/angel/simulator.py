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
from collections.abc import Iterable
from typing import Any

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


class AngelSimulator(SimulatorServer):
    """In-process Angel server: `await start()`, use `.ws_url` / `.api_url` / `.instruments_url`, `await stop()`.

    Each client's `subs` maps (exchange type, token) -> its subscribed modes.

    `options` are the simulator kit's (`ticks_per_second`, `seed`, `max_connections`, `ssl_context`).
    """

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
        listings: tuple[Listing, ...] = UNIVERSE,
        max_pairs: int = MAX_PAIRS,
        **options: Any,
    ) -> None:
        super().__init__(host, port, listings=listings, **options)
        self.api_key = api_key
        self.client_code = client_code
        self.pin = pin
        self.totp_secret = totp_secret
        self.max_pairs = max_pairs
        self.listings = {(int(EXCHANGE_TYPES[lst.exchange]), lst.angel_token): lst for lst in listings}
        self._master = master_records(listings)
        self._jwts: set[str] = {jwt_token} if jwt_token else set()
        self._feed_tokens: set[str] = {feed_token} if feed_token else set()
        self._refresh_tokens: set[str] = set()
        self._seq: dict[Key, int] = {}
        self.refuse_logins = False  # fault switch of the REST login
        self.order_sockets: list[web.WebSocketResponse] = []
        self.login_attempts = self.logins = self.refreshes = self.pings = 0  # counters
        self.last_sent: dict[tuple[int, str, int], bytes] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get(ORDER_PATH, self._orders_handler)
        app.router.add_post(LOGIN_PATH, self._login)
        app.router.add_post(REFRESH_PATH, self._refresh)
        app.router.add_get(MASTER_PATH, self._master_handler)

    @property
    def api_url(self) -> str:
        return self.base_url

    @property
    def instruments_url(self) -> str:
        return self.base_url + MASTER_PATH

    def credentials(self) -> AngelCredentials:
        """Credentials that log in here (PIN + TOTP)."""
        return AngelCredentials(self.api_key, self.client_code, pin=self.pin, totp_secret=self.totp_secret)

    def feed_options(self, **overrides: Any) -> FeedOptions:
        """Feed options that point the production adapter here."""
        return FeedOptions(
            **{"ws_url": self.ws_url, "api_url": self.api_url, "instruments": self.instruments_url, **overrides}
        )

    # -- observability for tests ------------------------------------------------------------

    def subscriptions_per_connection(self) -> list[int]:
        return [sum(len(modes) for modes in client.subs.values()) for client in self.clients.values()]

    def subscribed(self) -> set[tuple[int, str, int]]:
        """Every (exchange type, token, mode) subscribed on any connection."""
        return {
            (*key, mode) for client in self.clients.values() for key, modes in client.subs.items() for mode in modes
        }

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        listings = (self.listings.get(key) for client in self.clients.values() for key in client.subs)
        return {(lst.exchange, lst.symbol) for lst in listings if lst is not None}

    # -- faults -----------------------------------------------------------------------------

    def expire_credentials(self) -> None:
        """Invalidate every issued session token (a new day): handshakes need a fresh login."""
        for issued in (self._jwts, self._feed_tokens, self._refresh_tokens):
            issued.clear()

    expire_tokens = expire_credentials

    def secrets(self) -> list[str]:
        return [self.pin, self.totp_secret, *self._jwts, *self._feed_tokens, *self._refresh_tokens]

    def malformed_frame(self) -> bytes:
        return b"\x03\x01RELIANCE-truncated"

    # -- REST -------------------------------------------------------------------------------

    @staticmethod
    def _answer(data: dict[str, str] | None, message: str = "SUCCESS", code: str = "") -> web.Response:
        """SmartAPI's JSON envelope: `data` on success, None with a message and error code otherwise."""
        return web.json_response({"status": data is not None, "message": message, "errorcode": code, "data": data})

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _issue(self) -> dict[str, str]:
        jwt, refresh = (f"eyJhbGciOiJIUzUxMiJ9.{secrets.token_urlsafe(24)}" for _ in range(2))
        tokens = {"jwtToken": jwt, "refreshToken": refresh, "feedToken": secrets.token_urlsafe(18)}
        self._jwts.add(jwt)
        self._refresh_tokens.add(refresh)
        self._feed_tokens.add(tokens["feedToken"])
        return tokens

    async def _login(self, request: web.Request) -> web.Response:
        self.login_attempts += 1
        if request.headers.get("X-PrivateKey") != self.api_key:
            return self._answer(None, "Invalid API Key", "AG8004")
        body = await self._body(request)
        if body is None:
            return self._answer(None, "Invalid request", "AB1000")
        if self.refuse_logins:
            return self._answer(None, "Invalid totp", "AB1050")
        if body.get("clientcode") != self.client_code or body.get("password") != self.pin:
            return self._answer(None, "Invalid clientcode or password", "AB1007")
        if not pyotp.TOTP(self.totp_secret).verify(str(body.get("totp", "")), valid_window=1):
            return self._answer(None, "Invalid totp", "AB1050")
        self.logins += 1
        return self._answer(self._issue())

    async def _refresh(self, request: web.Request) -> web.Response:
        self.refreshes += 1
        body = await self._body(request)
        if body is None:
            return self._answer(None, "Invalid request", "AB1000")
        if self.refuse_logins or body.get("refreshToken") not in self._refresh_tokens:
            return self._answer(None, "Invalid refresh token", "AB8051")
        self._jwts.discard(strip_bearer(request.headers.get("Authorization", "")))
        self._refresh_tokens.discard(body["refreshToken"])
        return self._answer(self._issue())

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

    def authorize(self, request: web.Request) -> str | web.Response:
        """Header authentication (JWT, API key, client code, feed token), or query parameters without
        the JWT as browsers send them; HTTP 401 with Angel's `x-error-message` otherwise."""
        headers, query = request.headers, request.query
        client_code = headers.get("x-client-code") or query.get("clientCode", "")
        auth = headers.get("Authorization")
        header_auth = auth is not None or "clientCode" not in query  # browsers use query params, no JWT
        failures = (
            ("Auth token", self.reject_handshakes or (header_auth and strip_bearer(auth or "") not in self._jwts)),
            ("Client Code", client_code != self.client_code),
            ("API Key", (headers.get("x-api-key") or query.get("apiKey", "")) != self.api_key),
            ("Feed Token", (headers.get("x-feed-token") or query.get("feedToken", "")) not in self._feed_tokens),
        )
        for what, failed in failures:
            if failed:
                error = f"Invalid Header - Invalid {what}"
                return web.Response(status=401, headers={"x-error-message": error}, text=error)
        return client_code

    def too_many(self, account: str) -> web.Response:
        message = "Connection Limit Exceeded"
        return web.Response(status=429, headers={"x-error-message": message}, text=message)

    async def on_binary(self, client: SimClient, data: bytes) -> None:
        await self._send_error(client, ErrorCodes.INVALID_REQUEST)

    async def _send_error(self, client: SimClient, code: str, correlation_id: str = "") -> None:
        if not self.mute:
            await self.send(client, codec.encode_error(code, correlation_id))

    async def on_text(self, client: SimClient, text: str) -> None:
        if text == codec.HEARTBEAT:
            self.pings += 1
            if not self.mute:
                await self.send(client, codec.HEARTBEAT_REPLY)
            return
        try:
            request = codec.decode_request(text)
        except AngelCodecError:
            await self._send_error(client, ErrorCodes.INVALID_REQUEST)
            return
        mode, pairs = int(request.mode), client.subs
        keys = [(etype, token) for etype, tokens in request.tokens.items() for token in tokens]
        if request.action is Action.UNSUBSCRIBE:
            for key in keys:
                modes = pairs.get(key)
                if modes is not None:
                    modes.discard(mode)
                    if not modes:
                        del pairs[key]
            return
        new = list(dict.fromkeys(k for k in keys if mode not in pairs.get(k, ())))
        error = self._refusal(client, mode, keys, new)
        if error is not None:
            await self._send_error(client, error, request.correlation_id)
            return
        for key in new:
            pairs.setdefault(key, set()).add(mode)
        if self.mute or self.heartbeats_only:
            return
        for key in new:  # the current state at once, as Angel does on subscribe
            listing = self.listings.get(key)
            if listing is not None:
                tick = self.market.snapshot(listing.exchange, listing.symbol)
                await self.send(client, self._encode(key, listing, tick, mode))

    def _refusal(self, client: SimClient, mode: int, keys: list[Key], new: list[Key]) -> str | None:
        """The error code a subscription to `keys` (`new` not yet subscribed) gets, or None."""
        if mode == SubscriptionMode.DEPTH_20:
            if any(etype != codec.ExchangeType.NSE_CM for etype, _ in keys):
                return ErrorCodes.INVALID_REQUEST
            if len({k for k, modes in client.subs.items() if mode in modes} | set(keys)) > MAX_DEPTH_20_TOKENS:
                return ErrorCodes.LIMIT_EXCEEDED
        pair_count = sum(len(modes) for modes in client.subs.values())
        return ErrorCodes.LIMIT_EXCEEDED if pair_count + len(new) > self.max_pairs else None

    # -- market -------------------------------------------------------------------------------

    def _encode(self, key: Key, listing: Listing, tick: Tick, mode: int) -> bytes:
        self._seq[key] = seq = self._seq.get(key, 0) + 1
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
        data = self.last_sent[(*key, mode)] = self.wire(packet)
        return data

    def wire(self, packet: codec.AngelPacket) -> bytes:
        """The bytes of one packet (a SmartStream-family broker with other units overrides this)."""
        return codec.encode_packet(packet)

    async def on_tick(self, now_ms: int) -> None:
        """Each subscribed instrument advances once; each (instrument, mode) is encoded once."""
        wanted: dict[Key, dict[int, list[SimClient]]] = {}
        for client in self.clients.values():
            for key, modes in client.subs.items():
                for mode in modes:
                    wanted.setdefault(key, {}).setdefault(mode, []).append(client)
        for key, by_mode in wanted.items():
            listing = self.listings.get(key)
            if listing is None:
                continue
            tick = self.market.advance(listing.exchange, listing.symbol, now_ms)
            for mode, clients in by_mode.items():
                data = self._encode(key, listing, tick, mode)
                for client in clients:
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
