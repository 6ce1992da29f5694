"""A local Upstox server with a live simulated market, exact on the wire, on the simulator kit.

One aiohttp server, one port, Upstox's flow:
- `GET /v3/feed/market-data-feed` with `Authorization: Bearer <token>`: HTTP 302 to a single-use
  authorised URL `/market-data-feeder/v3/upstox-developer-api/feeds?requestId=..&code=..` (a bad
  token: HTTP 401 with Upstox's JSON error). `GET /v3/feed/market-data-feed/authorize` returns the
  same URL as JSON (`data.authorized_redirect_uri`). A used or unknown code: HTTP 403.
- On the authorised socket: a `market_info` message first, then requests as JSON in binary frames
  (`sub`, `change_mode`, `unsub`; a text frame is ignored), each `sub`/`change_mode` answered with an
  `initial_feed` snapshot of those instruments, then `live_feed` messages at the market's beat: one
  `FeedResponse` per beat with every subscribed instrument, `ltpc` / `fullFeed.marketFF` (5 levels, or
  30 for `full_d30`) / `fullFeed.indexFF`; every `partial_every`-th update of a full instrument is
  depth-only (no `ltpc`, no candles). An idle connection gets WebSocket pings.
- Caps: one market-data connection per token (a second is refused with HTTP 429), subscriptions per
  mode as Upstox documents them (a request that would pass them is ignored and counted);
  `full_d30` only when `plus` (an Upstox Plus account).
- `GET /v2/feed/portfolio-stream-feed?update_types=order` (bearer, 302 the same way): order updates
  pushed by `push_order()` as JSON text.
- `GET /market-quote/instruments/exchange/complete.json.gz`: the master of the simulated universe.

Fault switches: the kit's (`mute`, `heartbeats_only`, `reject_handshakes`, `drop_connections()`,
`expire_credentials()`, `send_malformed()`, `/_simulator` over HTTP), plus `rotate_token()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.market import UNIVERSE, Listing, deeper_side
from openalgo_proxy.brokers.simkit import SimClient, SimulatorServer
from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox import feed_v3_pb2 as pb
from openalgo_proxy.brokers.upstox.codec import FULL_D30, LTPC, UNSUBSCRIBE, UpstoxCodecError
from openalgo_proxy.brokers.upstox.connection import FEED_PATH
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.instruments import MASTER_PATH, listing_key, master_gzip
from openalgo_proxy.brokers.upstox.orders import PORTFOLIO_PATH
from openalgo_proxy.model import DepthLevel, Tick

log = logging.getLogger(__name__)

DEFAULT_ACCESS_TOKEN = "sim-upstox-access-token"
FEEDER_PATH = "/market-data-feeder/v3/upstox-developer-api/feeds"
PORTFOLIO_FEEDER_PATH = "/portfolio-feeder/v2/upstox-developer-api/feeds"
AUTHORIZE_SUFFIX = "/authorize"
#: the segments a market_info message reports, all open in the simulated market
SEGMENTS = ("NSE_EQ", "NSE_FO", "NCD_FO", "BSE_EQ", "BSE_FO", "BCD_FO", "MCX_FO", "NSE_INDEX", "BSE_INDEX")


def invalid_token_body() -> dict[str, Any]:
    return {
        "status": "error",
        "errors": [
            {
                "errorCode": "UDAPI100050",
                "message": "Invalid token used to access API",
                "propertyPath": None,
                "invalidValue": None,
                "error_code": "UDAPI100050",
                "property_path": None,
                "invalid_value": None,
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class Meant:
    """What the simulator put into one instrument's feed: the tick, the mode, the book (30 levels for
    full_d30) and whether it was a depth-only partial update."""

    mode: str
    tick: Tick
    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]
    book_only: bool = False
    index: bool = False


class UpstoxClient(SimClient):
    """One authorised WebSocket: its kind ("feed" or "orders") and instrument key -> mode in `subs`."""

    def __init__(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> None:
        super().__init__(ident, account, request, ws)
        self.kind = account.partition(":")[0]
        self.last_sent = time.monotonic()
        self.updates: Counter[str] = Counter()  # key -> live updates sent (for partial updates)

    @property
    def subscriptions(self) -> dict[str, str]:
        return self.subs


class UpstoxSimulator(SimulatorServer):
    """In-process Upstox server: `await start()`, use `.ws_url` (the feed URL clients connect to with
    the bearer header), `.portfolio_url`, `.instruments_url`, `await stop()`."""

    ws_path = FEEDER_PATH
    label = "upstox simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        ticks_per_second: float = 2.0,
        seed: int | None = None,
        listings: tuple[Listing, ...] = UNIVERSE,
        plus: bool = True,
        partial_every: int = 3,
        ping_interval: float = 5.0,
        max_connections: int = 1,
    ) -> None:
        super().__init__(
            host, port, ticks_per_second=ticks_per_second, seed=seed, listings=listings, max_connections=max_connections
        )
        self.access_token = access_token
        self.plus = plus
        self.partial_every = partial_every
        self.ping_interval = ping_interval
        self.listings: dict[str, Listing] = {listing_key(lst): lst for lst in listings}
        self._master = master_gzip(listings)
        self._codes: dict[str, str] = {}  # single-use code -> "KIND:TOKEN"
        self._expired_tokens: set[str] = set()
        # counters and what was sent, for assertions
        self.redirects = 0
        self.requests: list[codec.Request] = []
        self.invalid_requests = 0
        self.refused_requests = 0  # over a cap or a mode the account lacks
        self.text_frames = 0
        self.pings_sent = 0
        self.messages_sent = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=20_000)  # (client ident, binary frame)
        # every feed message with what it was meant to say, instrument key -> Meant
        self.meant: deque[tuple[bytes, dict[str, Meant]]] = deque(maxlen=20_000)
        self.authorization_headers: list[str] = []

    # -- URLs --------------------------------------------------------------------------------------

    @property
    def feed_url(self) -> str:
        """What a client connects to (with the bearer header); it is redirected from there."""
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}{FEED_PATH}"

    @property
    def portfolio_url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}{PORTFOLIO_PATH}"

    @property
    def instruments_url(self) -> str:
        return self.base_url + MASTER_PATH

    def connections(self, kind: str = "feed") -> list[UpstoxClient]:
        return [c for c in self.clients.values() if isinstance(c, UpstoxClient) and c.kind == kind]

    def subscribed(self) -> dict[str, str]:
        """Every instrument key -> mode subscribed on any market-data connection."""
        return {key: mode for c in self.connections() for key, mode in c.subs.items()}

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        return {(lst.exchange, lst.symbol) for key in self.subscribed() if (lst := self.listings.get(key))}

    def secrets(self) -> list[str]:
        return [self.access_token, *self._expired_tokens]

    # -- kit hooks ---------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get(FEED_PATH, self._authorize_redirect)
        app.router.add_get(FEED_PATH + AUTHORIZE_SUFFIX, self._authorize_json)
        app.router.add_get(PORTFOLIO_PATH, self._authorize_redirect)
        app.router.add_get(PORTFOLIO_PATH + AUTHORIZE_SUFFIX, self._authorize_json)
        app.router.add_get(PORTFOLIO_FEEDER_PATH, self._ws_handler)
        app.router.add_get(MASTER_PATH, self._master_handler)

    async def start(self) -> None:
        await super().start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._ping_loop(), name="upstox-sim-pings"))

    def authorize(self, request: web.Request) -> str | web.Response:
        code = request.query.get("code", "")
        account = self._codes.pop(code, None)
        if account is None or not request.query.get("requestId"):
            return web.json_response({"status": "error", "message": "invalid or used authorisation code"}, status=403)
        kind = "orders" if request.path == PORTFOLIO_FEEDER_PATH else "feed"
        if not account.startswith(kind + ":"):
            return web.json_response({"status": "error", "message": "code issued for another feed"}, status=403)
        return account

    def too_many(self, account: str) -> web.Response:
        return web.json_response({"status": "error", "message": "Connection Limit Exceeded"}, status=429)

    def new_client(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> SimClient:
        client = UpstoxClient(ident, account, request, ws)
        if client.kind == "feed" and not self.mute:
            status = dict.fromkeys(SEGMENTS, "NORMAL_OPEN")
            asyncio.get_running_loop().create_task(self.send(client, codec.market_info_bytes(status, _now_ms())))
        return client

    async def on_text(self, client: SimClient, text: str) -> None:
        self.text_frames += 1  # Upstox reads requests from binary frames only

    async def on_binary(self, client: SimClient, data: bytes) -> None:
        assert isinstance(client, UpstoxClient)
        if client.kind != "feed":
            return
        try:
            request = codec.decode_request(data)
        except UpstoxCodecError as exc:
            self.invalid_requests += 1
            log.debug("upstox simulator: invalid request from client %d: %s", client.ident, exc)
            return
        self.requests.append(request)
        subs: dict[str, str] = client.subs
        if request.method == UNSUBSCRIBE:
            for key in request.keys:
                subs.pop(key, None)
            return
        mode = request.mode
        assert mode is not None
        after = dict(subs)
        for key in request.keys:
            after[key] = mode
        if (mode == FULL_D30 and not self.plus) or not codec.caps_fit(Counter(after.values())):
            self.refused_requests += 1
            return
        subs.update(after)
        if self.mute:
            return
        meant = {}
        for key in dict.fromkeys(request.keys):
            listing = self.listings.get(key)
            if listing is not None:
                meant[key] = self._meant(listing, self.market.snapshot(listing.exchange, listing.symbol), mode)
        if meant:
            await self._send_feeds(client, codec.INITIAL_FEED, meant, _now_ms())

    async def on_tick(self, now_ms: int) -> None:
        clients = self.connections()
        ticks: dict[str, tuple[Listing, Tick]] = {}
        for client in clients:
            for key in client.subs:
                if key not in ticks:
                    listing = self.listings.get(key)
                    if listing is not None:
                        ticks[key] = (listing, self.market.advance(listing.exchange, listing.symbol, now_ms))
        for client in clients:
            meant = {}
            for key, mode in client.subs.items():
                found = ticks.get(key)
                if found is None:
                    continue
                listing, tick = found
                client.updates[key] += 1
                partial = self.partial_every > 0 and client.updates[key] % self.partial_every == 0
                meant[key] = self._meant(listing, tick, mode, book_only=partial)
            if meant:
                await self._send_feeds(client, codec.LIVE_FEED, meant, now_ms)

    @staticmethod
    def _meant(listing: Listing, tick: Tick, mode: str, *, book_only: bool = False) -> Meant:
        if mode == LTPC or mode == codec.OPTION_GREEKS:
            return Meant(LTPC, tick, (), ())
        if listing.is_index:
            return Meant(mode, tick, (), (), index=True)
        if mode == FULL_D30:
            bids = deeper_side(tick.bids, codec.D30_LEVELS, listing.tick_size, True, listing.lot_size)
            asks = deeper_side(tick.asks, codec.D30_LEVELS, listing.tick_size, False, listing.lot_size)
            return Meant(mode, tick, bids, asks, book_only=book_only)
        return Meant(mode, tick, tick.bids, tick.asks, book_only=book_only)

    async def _send_feeds(self, client: UpstoxClient, kind: int, meant: dict[str, Meant], now_ms: int) -> None:
        feeds: dict[str, pb.Feed] = {
            key: codec.feed_of(m.tick, m.mode, index=m.index, bids=m.bids, asks=m.asks, book_only=m.book_only)
            for key, m in meant.items()
        }
        data = codec.response_bytes(kind, feeds, now_ms)
        self.meant.append((data, meant))
        await self.send(client, data)

    def expire_credentials(self) -> None:
        """A new day's token: the old one is refused (HTTP 401) and every connection is closed."""
        asyncio.get_running_loop().create_task(self.rotate_token())

    async def rotate_token(self, new_token: str | None = None) -> str:
        self._expired_tokens.add(self.access_token)
        self.access_token = new_token or secrets.token_urlsafe(24)
        self._codes.clear()
        for client in list(self.clients.values()):
            with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                await asyncio.wait_for(client.ws.close(code=1008, message=b"access token expired"), timeout=1.0)
        return self.access_token

    def malformed_frame(self) -> bytes:
        return b"\x12\x09\x0a\x03NSE"  # a feeds entry cut short: not a FeedResponse

    async def send(self, client: SimClient, data: bytes | str) -> None:
        if isinstance(data, bytes) and not client.ws.closed:
            self.messages_sent += 1
            self.history.append((client.ident, data))
        if isinstance(client, UpstoxClient):
            client.last_sent = time.monotonic()
        await super().send(client, data)

    async def push_order(self, data: dict[str, Any]) -> int:
        """Send one order update (`update_type` "order" is added) to every portfolio connection."""
        text = json.dumps({"update_type": "order", **data})
        sent = 0
        for client in self.connections("orders"):
            await self.send(client, text)
            sent += 1
        return sent

    # -- HTTP: the authorised redirect and the master ----------------------------------------------

    def _account(self, request: web.Request) -> str | web.Response:
        """The bearer check of both authorise routes: "KIND:TOKEN", or the refusal."""
        self.handshake_attempts += 1
        header = request.headers.get("Authorization", "")
        self.authorization_headers.append(header)
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if self.reject_handshakes or not token or token != self.access_token:
            return self._refuse(web.json_response(invalid_token_body(), status=401))
        kind = "orders" if request.path.startswith(PORTFOLIO_PATH) else "feed"
        return f"{kind}:{token}"

    def _authorized_uri(self, account: str) -> str:
        code = str(uuid.uuid4())
        self._codes[code] = account
        path = PORTFOLIO_FEEDER_PATH if account.startswith("orders:") else FEEDER_PATH
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}{path}?requestId={uuid.uuid4()}&code={code}"

    async def _authorize_redirect(self, request: web.Request) -> web.StreamResponse:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        self.redirects += 1
        raise web.HTTPFound(self._authorized_uri(account))

    async def _authorize_json(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if isinstance(account, web.Response):
            return account
        uri = self._authorized_uri(account)
        return web.json_response(
            {"status": "success", "data": {"authorized_redirect_uri": uri, "authorizedRedirectUri": uri}}
        )

    async def _master_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self._master, content_type="application/gzip")

    # -- idle pings --------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if self.mute:
                continue
            now = time.monotonic()
            for client in list(self.clients.values()):
                if not isinstance(client, UpstoxClient) or client.ws.closed:
                    continue
                if self.heartbeats_only or now - client.last_sent >= self.ping_interval:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await client.ws.ping()
                        self.pings_sent += 1


def _now_ms() -> int:
    return int(time.time() * 1000)


def simulator_for(options: FeedOptions) -> UpstoxSimulator:
    """The simulator a local feed starts (`upstox-simulator`): an Upstox Plus account (30-level books)."""
    return UpstoxSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed)


@dataclass(frozen=True)
class _IssuedCredentials(UpstoxCredentials):
    """The simulator's current token, whatever it rotated to (what a daily login job would write)."""

    issued: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)

    def token(self) -> str:
        return self.issued()


def adapter_for(sim: UpstoxSimulator, options: FeedOptions) -> BrokerAdapter:
    """The production adapter with `sim`'s latest token, the feed's other options kept."""
    from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter

    local = dataclasses.replace(options, ws_url=sim.feed_url, instruments=sim.instruments_url, cache_dir=None)
    credentials = _IssuedCredentials(full_d30=sim.plus, issued=lambda: sim.access_token)
    return UpstoxAdapter(local, credentials, backoff_base=options.backoff_base, backoff_cap=options.backoff_cap)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8769, help="port for the feeds and the master (default 8769)")
    parser.add_argument("--access-token", default=DEFAULT_ACCESS_TOKEN, help="access token the simulator accepts")
    parser.add_argument("--ticks-per-second", type=float, default=2.0, help="ticks per instrument per second")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the simulated market")
    parser.add_argument("--no-plus", action="store_true", help="an account without Upstox Plus (no full_d30)")
    parser.add_argument(
        "--partial-every",
        type=int,
        default=3,
        help="every Nth live update of a full instrument is depth-only (0: never)",
    )


async def serve(args: argparse.Namespace) -> None:
    """`openalgo-proxy simulate upstox`: serve until cancelled."""
    sim = UpstoxSimulator(
        args.host,
        args.port,
        access_token=args.access_token,
        ticks_per_second=args.ticks_per_second,
        seed=args.seed,
        plus=not args.no_plus,
        partial_every=args.partial_every,
    )
    await sim.start()
    log.info(
        "upstox simulator: market feed %s, portfolio feed %s, master %s",
        sim.feed_url,
        sim.portfolio_url,
        sim.instruments_url,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


__all__ = ["UpstoxSimulator", "adapter_for", "add_arguments", "serve", "simulator_for"]
