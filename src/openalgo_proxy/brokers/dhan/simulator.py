"""A local Dhan server with a live simulated market, byte-exact on the wire.

One aiohttp server, one port:
- `GET /?version=2&token=..&clientId=..&authType=2`: Live Market Feed v2. JSON requests (15/17/21
  subscribe, 16/18/22 unsubscribe, 12 disconnect; at most 100 instruments per message and 5000 per
  connection), binary little-endian packets (Ticker, Quote + OI, Full, previous close on subscribe),
  several packets per frame (`packets_per_frame`; 1 for Dhan's SDK, which parses only the first).
  A bad token, client id or a sixth connection of a client is answered with the disconnect packet
  (809, 808, 805; 807 for a rotated token) and a close.
- `GET /twentydepth?token=..&clientId=..&authType=2`: 20-level depth (code 23/24, NSE_EQ and NSE_FNO,
  50 instruments per connection), bid and ask packets of 332 bytes.
- `GET /twohundreddepth?...` (the documented path) and `GET /?token=..` without `version` (the path
  Dhan's SDK uses): 200-level depth, one instrument per request and per connection.
- `GET /order-update` (and `/` with no query, as the SDK connects): first text frame
  `{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}`, then `order_alert`
  JSON messages pushed by `push_order()`.
- `GET /api-data/api-scrip-master.csv`: the compact instrument master of the simulated universe.

The server sends WebSocket protocol pings every `ping_interval` seconds and tolerates a client's
binary frame (the SDK sends an 83-byte legacy header after `{"RequestCode":12}`).
Fault switches: `mute`, `drop_connections()`, `disconnect_all(reason)`, `rotate_token()`,
`send_malformed()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

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
from openalgo_proxy.brokers.dhan.instruments import MASTER_PATH, listing_key, master_csv
from openalgo_proxy.brokers.market import UNIVERSE, Listing, SimulatedMarket, deeper_side
from openalgo_proxy.model import DepthLevel, Tick

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "1000000001"
DEFAULT_ACCESS_TOKEN = "sim-dhan-access-token"
DEPTH_20_PATH = "/twentydepth"
DEPTH_200_PATH = "/twohundreddepth"
ORDER_UPDATE_PATH = "/order-update"
MAX_DEPTH_200_INSTRUMENTS = 1

Key = tuple[int, int]  # (segment, security id)


@dataclass(eq=False)
class SimClient:
    """One accepted WebSocket connection."""

    ident: int
    kind: str  # "feed", "depth20", "depth200", "orders"
    client_id: str
    ws: web.WebSocketResponse
    request: web.Request
    subscriptions: dict[Key, set[int]] = field(default_factory=dict)  # key -> request codes

    @property
    def instrument_count(self) -> int:
        return len(self.subscriptions)


def deep_side(levels: tuple[DepthLevel, ...], count: int, tick_size: float, bid: bool, lot: int) -> list[DepthRow]:
    """`count` rows of one side: the five of the simulated book, then one tick apart outward."""
    return [DepthRow(lv.price, lv.quantity, lv.orders) for lv in deeper_side(levels, count, tick_size, bid, lot)]


class DhanSimulator:
    """In-process Dhan server: `await start()`, use `.ws_url` / `.depth_20_url` / `.instruments_url`, `await stop()`."""

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
        ping_interval: float | None = 10.0,
        max_connections: int = codec.MAX_CONNECTIONS,
        max_instruments: int = codec.MAX_INSTRUMENTS_PER_CONNECTION,
        send_prev_close: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.access_token = access_token
        self.ticks_per_second = ticks_per_second
        self.packets_per_frame = max(1, packets_per_frame)
        self.ping_interval = ping_interval
        self.max_connections = max_connections
        self.max_instruments = max_instruments
        self.send_prev_close = send_prev_close
        self.market = SimulatedMarket(listings, seed=seed)
        self.listings: dict[Key, Listing] = {listing_key(lst): lst for lst in listings}
        self._master = master_csv(listings)
        self._expired_tokens: set[str] = set()
        self.clients: dict[int, SimClient] = {}
        self._next_client = 0
        self._depth_seq = 0
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        # fault switches
        self.mute = False
        # counters and the last bytes sent per (segment, id, code) for byte-level assertions
        self.handshake_attempts = 0
        self.disconnects_sent: list[int] = []
        self.requests: list[codec.Request] = []
        self.invalid_requests = 0
        self.binary_frames = 0
        self.frames_sent = 0
        self.packets_sent = 0
        self.last_sent: dict[tuple[int, int, int], bytes] = {}
        self.history: deque[tuple[int, bytes]] = deque(maxlen=20_000)  # (client ident, binary frame) as sent
        self.order_logins: list[dict[str, Any]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._root)
        app.router.add_get(DEPTH_20_PATH, self._depth_20)
        app.router.add_get(DEPTH_200_PATH, self._depth_200)
        app.router.add_get(ORDER_UPDATE_PATH, self._orders)
        app.router.add_get(MASTER_PATH, self._master_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._ticker = asyncio.create_task(self._tick_loop(), name="dhan-sim-market")
        log.info("dhan simulator listening on %s", self.ws_url)

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
                log.debug("dhan simulator: closing client %d: %s", client.ident, exc)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DhanSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The market feed's base URL (the client appends `?version=2&token=..`)."""
        return f"ws://{self.host}:{self.port}"

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

    # -- observability for tests ------------------------------------------------------------

    def connections(self, kind: str = "feed") -> list[SimClient]:
        return [c for c in self.clients.values() if c.kind == kind]

    def subscribed(self, kind: str = "feed") -> set[tuple[int, int, int]]:
        """Every (segment, security id, request code) subscribed on any connection of a kind."""
        return {
            (k[0], k[1], code) for c in self.connections(kind) for k, codes in c.subscriptions.items() for code in codes
        }

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

    async def disconnect_all(self, reason: int, kind: str | None = None) -> None:
        """Send the disconnect packet with `reason` (805-809) on every connection, then close it."""
        for client in list(self.clients.values()):
            if kind is None or client.kind == kind:
                await self._disconnect(client, reason)

    async def rotate_token(self, new_token: str | None = None) -> str:
        """A new day's token: the old one is expired (807) for open and new connections."""
        self._expired_tokens.add(self.access_token)
        self.access_token = new_token or secrets.token_urlsafe(24)
        await self.disconnect_all(DisconnectReason.TOKEN_EXPIRED)
        return self.access_token

    async def send_malformed(self, data: bytes = b"\x08\xa2\x00\x01\x45\x0b\x00\x00truncated") -> None:
        for client in self.connections("feed"):
            await self._send(client, data)

    async def push_order(self, data: dict[str, Any]) -> int:
        """Send one `order_alert` with `data` to every logged-in order-update connection."""
        text = json.dumps({"Type": "order_alert", "Data": data})
        sent = 0
        for client in self.connections("orders"):
            if client.client_id:
                await self._send(client, text)
                sent += 1
        return sent

    # -- HTTP -------------------------------------------------------------------------------

    async def _master_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self._master, content_type="text/csv")

    def _auth_error(self, request: web.Request) -> int | None:
        query = request.query
        token = query.get("token", "")
        if query.get("clientId", "") != self.client_id:
            return DisconnectReason.INVALID_CLIENT_ID
        if token in self._expired_tokens:
            return DisconnectReason.TOKEN_EXPIRED
        if token != self.access_token:
            return DisconnectReason.AUTH_FAILED
        return None

    async def _root(self, request: web.Request) -> web.StreamResponse:
        if "version" in request.query:
            return await self._feed(request)
        if "token" in request.query:
            return await self._depth_200(request)
        return await self._orders(request)

    # -- WebSocket plumbing -----------------------------------------------------------------

    async def _accept(self, request: web.Request, kind: str) -> tuple[SimClient, int | None]:
        self.handshake_attempts += 1
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.ping_interval, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        self._next_client += 1
        client = SimClient(self._next_client, kind, request.query.get("clientId", ""), ws, request)
        error = self._auth_error(request) if kind != "orders" else None
        if error is None and kind != "orders":
            same = sum(1 for c in self.clients.values() if c.kind == kind and c.client_id == client.client_id)
            if same >= self.max_connections:
                error = DisconnectReason.TOO_MANY_CONNECTIONS
        if error is None:
            self.clients[client.ident] = client
        return client, error

    async def _disconnect(self, client: SimClient, reason: int) -> None:
        self.disconnects_sent.append(reason)
        packet = DisconnectPacket(0, 0, reason)
        data = codec.encode_packet(packet) if client.kind == "feed" else codec.encode_depth_packet(packet)
        await self._send(client, data)
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            await asyncio.wait_for(client.ws.close(), timeout=1.0)

    async def _send(self, client: SimClient, data: bytes | str) -> None:
        if client.ws.closed:
            return
        try:
            if isinstance(data, bytes):
                await client.ws.send_bytes(data)
                self.frames_sent += 1
                self.history.append((client.ident, data))
            else:
                await client.ws.send_str(data)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("dhan simulator: send to client %d failed: %s", client.ident, exc)

    async def _serve(self, client: SimClient, error: int | None) -> web.WebSocketResponse:
        if error is not None:
            await self._disconnect(client, error)
            return client.ws
        try:
            async for msg in client.ws:
                if msg.type == WSMsgType.TEXT:
                    if await self._on_text(client, msg.data):
                        break
                elif msg.type == WSMsgType.BINARY:
                    self.binary_frames += 1  # the SDK's legacy header after RequestCode 12: ignored
        except (ConnectionError, RuntimeError) as exc:
            log.debug("dhan simulator: client %d ended: %s", client.ident, exc)
        finally:
            self.clients.pop(client.ident, None)
        return client.ws

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        client, error = await self._accept(request, "feed")
        return await self._serve(client, error)

    async def _depth_20(self, request: web.Request) -> web.StreamResponse:
        client, error = await self._accept(request, "depth20")
        return await self._serve(client, error)

    async def _depth_200(self, request: web.Request) -> web.StreamResponse:
        client, error = await self._accept(request, "depth200")
        return await self._serve(client, error)

    async def _orders(self, request: web.Request) -> web.StreamResponse:
        client, _ = await self._accept(request, "orders")
        ws = client.ws
        try:
            first = await ws.receive(timeout=10.0)
            login = json.loads(first.data) if first.type == WSMsgType.TEXT else None
            req = login.get("LoginReq") if isinstance(login, dict) else None
            if (
                not isinstance(login, dict)
                or not isinstance(req, dict)
                or req.get("MsgCode") != 42
                or str(req.get("ClientId")) != self.client_id
                or str(req.get("Token")) != self.access_token
            ):
                self.clients.pop(client.ident, None)
                await ws.close(code=1008, message=b"invalid login")
                return ws
            self.order_logins.append(login)
            client.client_id = self.client_id
            async for msg in ws:
                if msg.type == WSMsgType.CLOSE:
                    break
        except (TimeoutError, ValueError, ConnectionError, RuntimeError) as exc:
            log.debug("dhan simulator: order-update client %d ended: %s", client.ident, exc)
        finally:
            self.clients.pop(client.ident, None)
        return ws

    # -- requests ---------------------------------------------------------------------------

    async def _on_text(self, client: SimClient, text: str) -> bool:
        """Handle one request; True when the client asked to disconnect."""
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
        new = [k for k in dict.fromkeys(keys) if code not in client.subscriptions.get(k, ())]
        if len(client.subscriptions.keys() | set(keys)) > cap:
            self.invalid_requests += 1  # over the connection's cap: the whole request is ignored
            return False
        for key in new:
            client.subscriptions.setdefault(key, set()).add(code)
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
    def _remove(client: SimClient, keys: list[Key], code: int) -> None:
        for key in keys:
            codes = client.subscriptions.get(key)
            if codes is not None:
                codes.discard(code)
                if not codes:
                    del client.subscriptions[key]

    async def _write(self, client: SimClient, packets: list[bytes]) -> None:
        step = self.packets_per_frame if client.kind == "feed" else 2  # depth: a bid/ask pair per frame
        for i in range(0, len(packets), step):
            self.packets_sent += len(packets[i : i + step])
            await self._send(client, b"".join(packets[i : i + step]))

    # -- market -------------------------------------------------------------------------------

    def _encode(self, key: Key, tick: Tick, code: int) -> list[bytes]:
        out = []
        for packet in codec.packets_from_tick(tick, code, key[0], key[1]):
            data = codec.encode_packet(packet)
            out.append(data)
        if out:
            self.last_sent[(key[0], key[1], code)] = b"".join(out)
        return out

    def _depth(self, key: Key, listing: Listing, tick: Tick, kind: str) -> list[bytes]:
        levels = codec.DEPTH_20_LEVELS if kind == "depth20" else codec.DEPTH_200_LEVELS
        self._depth_seq += 1
        bid = DepthPacket(
            True,
            key[0],
            key[1],
            self._depth_seq,
            tuple(deep_side(tick.bids, levels, listing.tick_size, True, listing.lot_size)),
        )
        ask = DepthPacket(
            False,
            key[0],
            key[1],
            self._depth_seq,
            tuple(deep_side(tick.asks, levels, listing.tick_size, False, listing.lot_size)),
        )
        out = [codec.encode_depth_packet(bid, levels), codec.encode_depth_packet(ask, levels)]
        self.last_sent[(key[0], key[1], levels)] = b"".join(out)
        return out

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
            if self.mute or not self.clients:
                continue
            await self._tick_once()

    async def _tick_once(self) -> None:
        wanted: set[Key] = set()
        for client in self.clients.values():
            if client.kind != "orders":
                wanted.update(client.subscriptions)
        now = int(time.time() * 1000)
        ticks: dict[Key, tuple[Listing, Tick]] = {}
        for key in wanted:
            listing = self.listings.get(key)
            if listing is not None:
                ticks[key] = (listing, self.market.advance(listing.exchange, listing.symbol, now))
        encoded: dict[tuple[Key, int | str], list[bytes]] = {}
        for client in list(self.clients.values()):
            if client.kind == "orders":
                continue
            out: list[bytes] = []
            for key, codes in client.subscriptions.items():
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
