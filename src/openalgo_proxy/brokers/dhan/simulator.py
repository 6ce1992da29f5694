"""A local Dhan server with a live simulated market, byte-exact on the wire, on the simulator kit.

One aiohttp server, one port:
- `GET /?version=2&token=..&clientId=..&authType=2`: Live Market Feed v2. JSON requests (15/17/21
  subscribe, 16/18/22 unsubscribe, 12 disconnect; at most 100 instruments per message and 5000 per
  connection), binary little-endian packets (Ticker, Quote + OI, Full, previous close on subscribe),
  several packets per frame (`packets_per_frame`; 1 for Dhan's SDK, which parses only the first).
  A bad token or client id is answered with the disconnect packet (809, 808; 807 for an expired
  token) and a close; a sixth connection of a client with HTTP 429 (Dhan's 805 reason in the body).
- `GET /twentydepth?token=..&clientId=..&authType=2`: 20-level depth (code 23/24, NSE_EQ and NSE_FNO,
  50 instruments per connection), bid and ask packets of 332 bytes.
- `GET /twohundreddepth?...` (the documented path) and `GET /?token=..` without `version` (the path
  Dhan's SDK uses): 200-level depth, one instrument per request and per connection.
- `GET /order-update` (and `/` with no query, as the SDK connects): first text frame
  `{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}`, then `order_alert`
  JSON messages pushed by `push_order()`.
- `GET /api-data/api-scrip-master.csv`: the compact instrument master of the simulated universe.

The server answers protocol pings and tolerates a client's binary frame (the SDK sends an 83-byte
legacy header after `{"RequestCode":12}`). Fault switches: the kit's (`mute`, `heartbeats_only`,
`reject_handshakes`, `drop_connections()`, `expire_credentials()`, `send_malformed()`, and
`/_simulator` over HTTP), plus `disconnect_all(reason)` and `rotate_token()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.dhan import codec
from openalgo_proxy.brokers.dhan.codec import (
    DepthPacket,
    DepthRow,
    DhanCodecError,
    DisconnectPacket,
    DisconnectReason,
    PrevClosePacket,
    RequestCode,
    Segment,
)
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.instruments import MASTER_PATH, listing_key, master_csv
from openalgo_proxy.brokers.market import UNIVERSE, Listing, deeper_side
from openalgo_proxy.brokers.simkit import SimClient, SimulatorServer
from openalgo_proxy.model import DepthLevel, Tick

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "1000000001"
DEFAULT_ACCESS_TOKEN = "sim-dhan-access-token"
DEPTH_20_PATH = "/twentydepth"
DEPTH_200_PATH = "/twohundreddepth"
ORDER_UPDATE_PATH = "/order-update"
MAX_DEPTH_200_INSTRUMENTS = 1

Key = tuple[int, int]  # (segment, security id)


class DhanClient(SimClient):
    """One accepted WebSocket connection: its feed kind and (segment, id) -> request codes in `subs`."""

    def __init__(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> None:
        super().__init__(ident, account, request, ws)
        self.kind, _, self.client_id = account.partition(":")
        self.refusal: int | None = None  # a disconnect reason to send at once (bad credentials)

    @property
    def subscriptions(self) -> dict[Key, set[int]]:
        return self.subs

    @property
    def instrument_count(self) -> int:
        return len(self.subs)


def deep_side(levels: tuple[DepthLevel, ...], count: int, tick_size: float, bid: bool, lot: int) -> list[DepthRow]:
    """`count` rows of one side: the five of the simulated book, then one tick apart outward."""
    return [DepthRow(lv.price, lv.quantity, lv.orders) for lv in deeper_side(levels, count, tick_size, bid, lot)]


class DhanSimulator(SimulatorServer):
    """In-process Dhan server on the simulator kit: `await start()`, use `.ws_url` / `.depth_20_url` /
    `.depth_200_url` / `.order_update_url` / `.instruments_url`, `await stop()`.

    Every connection's account is `KIND:CLIENT_ID` (KIND feed, depth20, depth200, orders), so the
    kit's per-account cap counts each feed apart, as Dhan does. Every client's first frame goes
    through `authenticate`: the order-update login there, for the other feeds simply their first
    request.
    """

    ws_path = "/"
    label = "dhan simulator"
    first_frame_auth = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        ticks_per_second: float = 2.0,
        seed: int | None = None,
        listings: tuple[Listing, ...] = UNIVERSE,
        packets_per_frame: int = 8,
        max_connections: int = codec.MAX_CONNECTIONS,
        max_instruments: int = codec.MAX_INSTRUMENTS_PER_CONNECTION,
        send_prev_close: bool = True,
    ) -> None:
        super().__init__(
            host, port, ticks_per_second=ticks_per_second, seed=seed, listings=listings, max_connections=max_connections
        )
        self.client_id = client_id
        self.access_token = access_token
        self.packets_per_frame = max(1, packets_per_frame)
        self.max_instruments = max_instruments
        self.send_prev_close = send_prev_close
        self.listings: dict[Key, Listing] = {listing_key(lst): lst for lst in listings}
        self._master = master_csv(listings)
        self._expired_tokens: set[str] = set()
        self._depth_seq = 0
        # counters and the bytes sent, for byte-level assertions
        self.disconnects_sent: list[int] = []
        self.requests: list[codec.Request] = []
        self.invalid_requests = 0
        self.binary_frames = 0
        self.frames_sent = 0
        self.packets_sent = 0
        self.last_sent: dict[tuple[int, int, int], bytes] = {}  # (segment, id, code or levels) -> bytes
        self.history: deque[tuple[int, bytes]] = deque(maxlen=20_000)  # (client ident, binary frame) as sent
        self.order_logins: list[dict[str, Any]] = []

    # -- kit hooks ---------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        for path in (DEPTH_20_PATH, DEPTH_200_PATH, ORDER_UPDATE_PATH):
            app.router.add_get(path, self._ws_handler)
        app.router.add_get(MASTER_PATH, self._master_handler)

    @staticmethod
    def _kind(request: web.Request) -> str:
        if request.path == DEPTH_20_PATH:
            return "depth20"
        if request.path == DEPTH_200_PATH:
            return "depth200"
        if request.path == ORDER_UPDATE_PATH:
            return "orders"
        if "version" in request.query:
            return "feed"
        return "depth200" if "token" in request.query else "orders"  # the SDK's 200-depth URL is "/"

    def authorize(self, request: web.Request) -> str:
        """Dhan accepts the WebSocket and then sends a disconnect packet for bad credentials: every
        handshake is let in, and the reason to refuse it is remembered for `new_client`."""
        kind = self._kind(request)
        return f"{kind}:{request.query.get('clientId', '') if kind != 'orders' else ''}"

    def new_client(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> SimClient:
        client = DhanClient(ident, account, request, ws)
        if client.kind != "orders":
            client.refusal = self._auth_error(request)
            if client.refusal is not None:
                asyncio.get_running_loop().create_task(self._disconnect(client, client.refusal))
        return client

    def too_many(self, account: str) -> web.Response:
        return web.Response(status=429, text=f"Disconnected: {codec.DISCONNECT_MESSAGES[805]}")

    async def authenticate(self, client: SimClient, message: str | bytes) -> bool:
        assert isinstance(client, DhanClient)
        if client.kind != "orders":  # no first-frame login on these feeds: the frame is a request
            if isinstance(message, str):
                if await self._on_text(client, message):
                    await client.ws.close()
            else:
                self.binary_frames += 1
            return client.refusal is None
        try:
            login = json.loads(message)
        except ValueError:
            return False
        req = login.get("LoginReq") if isinstance(login, dict) else None
        if (
            not isinstance(login, dict)
            or not isinstance(req, dict)
            or req.get("MsgCode") != 42
            or str(req.get("ClientId")) != self.client_id
            or str(req.get("Token")) != self.access_token
        ):
            return False
        self.order_logins.append(login)
        client.client_id = self.client_id
        return True

    async def on_text(self, client: SimClient, text: str) -> None:
        assert isinstance(client, DhanClient)
        if client.kind != "orders" and await self._on_text(client, text):
            await client.ws.close()

    async def on_binary(self, client: SimClient, data: bytes) -> None:
        self.binary_frames += 1  # the SDK's legacy header after RequestCode 12: ignored

    def expire_credentials(self) -> None:
        """A new day's token: the old one answers 807 on open and new connections."""
        self._expired_tokens.add(self.access_token)
        self.access_token = secrets.token_urlsafe(24)
        asyncio.get_running_loop().create_task(self.disconnect_all(DisconnectReason.TOKEN_EXPIRED))

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        keys = {k for c in self.connections() for k in c.subs if k in self.listings}
        return {(self.listings[k].exchange, self.listings[k].symbol) for k in keys}

    def secrets(self) -> list[str]:
        return [self.access_token, *self._expired_tokens]

    def malformed_frame(self) -> bytes:
        return b"\x08\xa2\x00\x01\x45\x0b\x00\x00truncated"  # a Full header on a 16-byte frame

    async def send(self, client: SimClient, data: bytes | str) -> None:
        if isinstance(data, bytes) and not client.ws.closed:
            self.frames_sent += 1
            self.history.append((client.ident, data))
        await super().send(client, data)

    # -- URLs and observability --------------------------------------------------------------------

    @property
    def depth_20_url(self) -> str:
        return f"ws://{self.host}:{self.port}{DEPTH_20_PATH}"

    @property
    def depth_200_url(self) -> str:
        return f"ws://{self.host}:{self.port}{DEPTH_200_PATH}"

    @property
    def order_update_url(self) -> str:
        return f"ws://{self.host}:{self.port}{ORDER_UPDATE_PATH}"

    @property
    def instruments_url(self) -> str:
        return self.base_url + MASTER_PATH

    def connections(self, kind: str = "feed") -> list[DhanClient]:
        return [c for c in self.clients.values() if isinstance(c, DhanClient) and c.kind == kind]

    def subscribed(self, kind: str = "feed") -> set[tuple[int, int, int]]:
        """Every (segment, security id, request code) subscribed on any connection of a kind."""
        return {(k[0], k[1], code) for c in self.connections(kind) for k, codes in c.subs.items() for code in codes}

    # -- faults ------------------------------------------------------------------------------------

    async def disconnect_all(self, reason: int, kind: str | None = None) -> None:
        """Send the disconnect packet with `reason` (805-809) on every connection, then close it."""
        for client in list(self.clients.values()):
            if isinstance(client, DhanClient) and client.kind != "orders" and (kind is None or client.kind == kind):
                await self._disconnect(client, reason)

    async def rotate_token(self, new_token: str | None = None) -> str:
        """A new day's token: the old one is expired (807) for open and new connections."""
        self._expired_tokens.add(self.access_token)
        self.access_token = new_token or secrets.token_urlsafe(24)
        await self.disconnect_all(DisconnectReason.TOKEN_EXPIRED)
        return self.access_token

    async def push_order(self, data: dict[str, Any]) -> int:
        """Send one `order_alert` with `data` to every logged-in order-update connection."""
        text = json.dumps({"Type": "order_alert", "Data": data})
        sent = 0
        for client in self.connections("orders"):
            if client.authenticated and client.client_id:
                await self.send(client, text)
                sent += 1
        return sent

    # -- HTTP and auth -----------------------------------------------------------------------------

    async def _master_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self._master, content_type="text/csv")

    def _auth_error(self, request: web.Request) -> int | None:
        query = request.query
        token = query.get("token", "")
        if self.reject_handshakes:
            return DisconnectReason.AUTH_FAILED
        if query.get("clientId", "") != self.client_id:
            return DisconnectReason.INVALID_CLIENT_ID
        if token in self._expired_tokens:
            return DisconnectReason.TOKEN_EXPIRED
        if token != self.access_token:
            return DisconnectReason.AUTH_FAILED
        return None

    async def _disconnect(self, client: DhanClient, reason: int) -> None:
        self.disconnects_sent.append(reason)
        packet = DisconnectPacket(0, 0, reason)
        data = codec.encode_packet(packet) if client.kind == "feed" else codec.encode_depth_packet(packet)
        await self.send(client, data)
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            await asyncio.wait_for(client.ws.close(), timeout=1.0)

    # -- requests ---------------------------------------------------------------------------------

    async def _on_text(self, client: DhanClient, text: str) -> bool:
        """Handle one request; True when the client asked to disconnect."""
        if client.refusal is not None:
            return False
        try:
            request = codec.decode_request(text)
        except DhanCodecError as exc:
            self.invalid_requests += 1
            log.debug("dhan simulator: invalid request from client %d: %s", client.ident, exc)
            return False
        self.requests.append(request)
        code = request.code
        if code == RequestCode.DISCONNECT:
            return True
        keys = [(int(i.segment), int(i.security_id)) for i in request.instruments]
        subs = client.subs
        if client.kind == "feed":
            if code in (RequestCode.UNSUBSCRIBE_TICKER, RequestCode.UNSUBSCRIBE_QUOTE, RequestCode.UNSUBSCRIBE_FULL):
                self._remove(client, keys, code - 1)
                return False
            if code not in (RequestCode.TICKER, RequestCode.QUOTE, RequestCode.FULL):
                self.invalid_requests += 1
                return False
            cap = self.max_instruments
        else:
            if code == RequestCode.UNSUBSCRIBE_DEPTH:
                self._remove(client, keys, RequestCode.DEPTH)
                return False
            if code != RequestCode.DEPTH or any(k[0] not in codec.DEPTH_SEGMENTS for k in keys):
                self.invalid_requests += 1
                return False
            cap = codec.MAX_DEPTH_20_INSTRUMENTS if client.kind == "depth20" else MAX_DEPTH_200_INSTRUMENTS
        new = [k for k in dict.fromkeys(keys) if code not in subs.get(k, ())]
        if len(subs.keys() | set(keys)) > cap:
            self.invalid_requests += 1  # over the connection's cap: the whole request is ignored
            return False
        for key in new:
            subs.setdefault(key, set()).add(code)
        if self.mute:
            return False
        frames: list[bytes] = []
        for key in new:  # the current state at once
            listing = self.listings.get(key)
            if listing is None:
                continue
            tick = self.market.snapshot(listing.exchange, listing.symbol)
            if client.kind == "feed":
                if self.send_prev_close:
                    frames.append(codec.encode_packet(PrevClosePacket(key[0], key[1], tick.close, tick.oi)))
                frames += self._encode(key, tick, code)
            else:
                frames += self._depth(key, listing, tick, client.kind)
        await self._write(client, frames)
        return False

    @staticmethod
    def _remove(client: DhanClient, keys: list[Key], code: int) -> None:
        for key in keys:
            codes = client.subs.get(key)
            if codes is not None:
                codes.discard(code)
                if not codes:
                    del client.subs[key]

    async def _write(self, client: DhanClient, packets: list[bytes]) -> None:
        step = self.packets_per_frame if client.kind == "feed" else 2  # depth: a bid/ask pair per frame
        for i in range(0, len(packets), step):
            self.packets_sent += len(packets[i : i + step])
            await self.send(client, b"".join(packets[i : i + step]))

    # -- market -----------------------------------------------------------------------------------

    def _encode(self, key: Key, tick: Tick, code: int) -> list[bytes]:
        out = [codec.encode_packet(packet) for packet in codec.packets_from_tick(tick, code, key[0], key[1])]
        if out:
            self.last_sent[(key[0], key[1], code)] = b"".join(out)
        return out

    def _depth(self, key: Key, listing: Listing, tick: Tick, kind: str) -> list[bytes]:
        levels = codec.DEPTH_20_LEVELS if kind == "depth20" else codec.DEPTH_200_LEVELS
        self._depth_seq += 1
        rows = {
            side: tuple(deep_side(tick.bids if side else tick.asks, levels, listing.tick_size, side, listing.lot_size))
            for side in (True, False)
        }
        out = [
            codec.encode_depth_packet(DepthPacket(side, key[0], key[1], self._depth_seq, rows[side]), levels)
            for side in (True, False)
        ]
        self.last_sent[(key[0], key[1], levels)] = b"".join(out)
        return out

    async def on_tick(self, now_ms: int) -> None:
        clients = [c for c in self.clients.values() if isinstance(c, DhanClient) and c.kind != "orders"]
        wanted: set[Key] = set()
        for client in clients:
            wanted.update(client.subs)
        ticks: dict[Key, tuple[Listing, Tick]] = {}
        for key in wanted:
            listing = self.listings.get(key)
            if listing is not None:
                ticks[key] = (listing, self.market.advance(listing.exchange, listing.symbol, now_ms))
        encoded: dict[tuple[Key, int | str], list[bytes]] = {}
        for client in clients:
            out: list[bytes] = []
            for key, codes in client.subs.items():
                found = ticks.get(key)
                if found is None:
                    continue
                listing, tick = found
                for code in sorted(codes):
                    tag: int | str = code if client.kind == "feed" else client.kind
                    packets = encoded.get((key, tag))
                    if packets is None:
                        if client.kind == "feed":
                            packets = self._encode(key, tick, code)
                        else:
                            packets = self._depth(key, listing, tick, client.kind)
                        encoded[(key, tag)] = packets
                    out += packets
            await self._write(client, out)


def simulator_for(options: FeedOptions) -> DhanSimulator:
    """The simulator a local feed starts (`dhan-simulator`)."""
    return DhanSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed)


@dataclasses.dataclass(frozen=True)
class _IssuedCredentials(DhanCredentials):
    """The simulator's current token, whatever it rotated to (what a daily login job would write)."""

    issued: Callable[[], str] = dataclasses.field(default=lambda: "", repr=False, compare=False)

    def token(self) -> str:
        return self.issued()


def adapter_for(sim: DhanSimulator, options: FeedOptions) -> BrokerAdapter:
    """The production adapter with `sim`'s client id and its latest token."""
    from openalgo_proxy.brokers.dhan.adapter import DhanAdapter

    local = dataclasses.replace(options, ws_url=sim.ws_url, instruments=sim.instruments_url, cache_dir=None)
    credentials = _IssuedCredentials(sim.client_id, issued=lambda: sim.access_token)
    per = options.max_per_connection or codec.MAX_INSTRUMENTS_PER_CONNECTION
    cap = options.backoff_cap
    return DhanAdapter(
        local,
        credentials,
        max_instruments_per_connection=per,
        backoff_base=options.backoff_base,
        backoff_cap=cap,
        backoff_long=cap,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8767, help="port for every feed and the master (default 8767)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="Dhan client id the simulator accepts")
    parser.add_argument("--access-token", default=DEFAULT_ACCESS_TOKEN, help="access token the simulator accepts")
    parser.add_argument("--ticks-per-second", type=float, default=2.0, help="ticks per instrument per second")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the simulated market")
    parser.add_argument(
        "--packets-per-frame", type=int, default=8, help="market-feed packets per WebSocket frame (1 for Dhan's SDK)"
    )


async def serve(args: argparse.Namespace) -> None:
    """`openalgo-proxy simulate dhan`: serve until cancelled."""
    sim = DhanSimulator(
        args.host,
        args.port,
        client_id=args.client_id,
        access_token=args.access_token,
        ticks_per_second=args.ticks_per_second,
        seed=args.seed,
        packets_per_frame=args.packets_per_frame,
    )
    await sim.start()
    log.info(
        "dhan simulator: market feed %s, 20-depth %s, 200-depth %s, order updates %s, master %s, client id %s",
        sim.ws_url,
        sim.depth_20_url,
        sim.depth_200_url,
        sim.order_update_url,
        sim.instruments_url,
        sim.client_id,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


__all__ = ["DhanSimulator", "Segment", "add_arguments", "serve"]
