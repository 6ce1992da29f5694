"""A local Kite Connect WebSocket server with a live simulated market (`openalgo-proxy simulate zerodha`).

One aiohttp port serves the ticker at `/` (query api_key/access_token; 403 on bad credentials, 429
for a connection past the per-key cap) and the instruments CSV at `/instruments`. It speaks the
exact wire format (multi-packet big-endian frames, 1-byte heartbeats about once a second) from the
shared SimulatedMarket, and has fault switches and counters for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from typing import Any

from aiohttp import web

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.simkit import SimClient, SimulatorServer, common_arguments, serve_until_cancelled
from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import ErrorMessage, KiteCodecError, KiteMode
from openalgo_proxy.brokers.zerodha.instruments import INDEX_SEGMENT, KiteRow, format_csv
from openalgo_proxy.model import Tick

DEFAULT_PORT = 8767
MAX_PER_CONNECTION = 3000
PACKETS_PER_FRAME = 500


def kite_row(lst: Listing) -> KiteRow:
    """The Kite instruments CSV row of a listing of the simulated universe."""
    token, exchange = lst.kite_token, lst.exchange
    if lst.is_index:  # its long name on the bare exchange, without tick size or lot
        return KiteRow(token, token >> 8, lst.name, lst.name, 0.0, "", 0.0, 0.0, 0, "EQ", INDEX_SEGMENT, exchange[:3])
    row = KiteRow(
        token, token >> 8, lst.symbol, lst.name, 0.0, "", 0.0, lst.tick_size, lst.lot_size, "EQ", exchange, exchange
    )
    if lst.instrument_type.startswith("FUT") and lst.expiry:  # NAME + YYMON + FUT
        day = dt.datetime.strptime(lst.expiry, "%d%b%Y").date()
        symbol = f"{lst.name}{day:%y%b}FUT".upper()
        return dataclasses.replace(
            row, tradingsymbol=symbol, expiry=day.isoformat(), instrument_type="FUT", segment=f"{exchange}-FUT"
        )
    return row


def kite_error(status: int, message: str, error_type: str) -> web.Response:
    """A refused handshake as Kite answers it."""
    return web.json_response({"status": "error", "message": message, "error_type": error_type}, status=status)


class SimConnection(SimClient):
    """One accepted client connection: `subs` (`modes`) maps token -> mode."""

    @property
    def modes(self) -> dict[int, KiteMode]:
        return self.subs


class KiteSimulator(SimulatorServer):
    """In-process Kite server. `await start()`, use `.port` / `.url`, `await stop()`."""

    heartbeat = codec.HEARTBEAT
    label = "kite simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "sim_api_key",
        access_token: str = "sim_access_token",
        *,
        listings: tuple[Listing, ...] = UNIVERSE,
        max_per_connection: int = MAX_PER_CONNECTION,
        record: bool = False,
        **kit: Any,  # the kit's: ticks_per_second, seed, heartbeat_interval, max_connections, ssl_context
    ) -> None:
        super().__init__(host, port, listings=listings, **kit)
        self.api_key = api_key
        self._tokens = {access_token}
        self.current_token = access_token  # what a login would hand out now
        self._generation = 0
        self.max_per_connection = max_per_connection
        self.listings = {lst.kite_token: lst for lst in listings}
        self.csv = format_csv(map(kite_row, listings)).encode()
        self.record = record
        self.recorded: list[tuple[int, bytes]] = []  # (connection id, binary frame) when record=True
        self.accepted_headers: list[dict[str, str]] = []  # request headers of accepted connections
        self.requests_received = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/instruments", self._handle_instruments)

    def new_client(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> SimConnection:
        self.accepted_headers.append(dict(request.headers))
        return SimConnection(ident, account, request, ws)

    @property
    def connections(self) -> list[SimConnection]:
        return [c for c in self.clients.values() if isinstance(c, SimConnection)]

    @property
    def url(self) -> str:
        return self.ws_url.rstrip("/")

    @property
    def instruments_url(self) -> str:
        return f"{self.base_url}/instruments"

    # -- credentials and faults ------------------------------------------------------------------

    def authorize(self, request: web.Request) -> str | web.Response:
        api_key, token = request.query.get("api_key", ""), request.query.get("access_token", "")
        if self.reject_handshakes or api_key != self.api_key or token not in self._tokens:
            return kite_error(403, "Invalid api_key or access_token", "TokenException")
        return api_key

    def too_many(self, account: str) -> web.Response:
        return kite_error(429, "Maximum connections exceeded", "NetworkException")

    def expire_token(self, new_token: str | None = None) -> None:
        """Every current access token stops working (handshakes get 403); optionally accept a new one."""
        self._tokens = {new_token} if new_token else set()

    def accept_token(self, token: str) -> None:
        self._tokens.add(token)

    def expire_credentials(self) -> None:
        """A new day: the old token is refused, a fresh one (`current_token`) is issued."""
        self._generation += 1
        self.current_token = f"sim_access_token_{self._generation}"
        self.expire_token(self.current_token)

    def secrets(self) -> list[str]:
        return [*self._tokens, self.current_token]

    def malformed_frame(self) -> bytes:
        """A frame that announces two packets but carries one."""
        return b"\x00\x02" + b"\x00\x08" + codec.encode_packet(codec.KitePacket(codec.PacketKind.LTP, 738561, 1))

    async def send_text(self, message: codec.TextMessage, client: SimClient | None = None) -> None:
        """A text frame (order update, error, notice) to `client`, or on every connection."""
        payload = codec.encode_text(message).decode()
        for conn in self.connections if client is None else [client]:
            await conn.ws.send_str(payload)

    # -- observation -----------------------------------------------------------------------------

    def subscriptions(self) -> list[dict[int, KiteMode]]:
        """Per open connection, its subscribed tokens and their modes."""
        return [dict(conn.modes) for conn in self.connections]

    def subscribed(self) -> dict[int, KiteMode]:
        return {token: mode for conn in self.connections for token, mode in conn.modes.items()}

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        return {(self.listings[t].exchange, self.listings[t].symbol) for t in self.subscribed()}

    # -- requests and streaming ------------------------------------------------------------------

    async def _handle_instruments(self, request: web.Request) -> web.Response:
        return web.Response(body=self.csv, content_type="text/csv")

    async def on_text(self, client: SimClient, text: str) -> None:
        self.requests_received += 1
        try:
            request = codec.parse_request(text)
        except KiteCodecError as exc:
            await self.send_text(ErrorMessage(f"Invalid message: {exc}"), client)
            return
        modes: dict[int, KiteMode] = client.subs
        tokens = [t for t in dict.fromkeys(request.tokens) if t in self.listings]
        if request.action == "unsubscribe":
            for t in tokens:
                modes.pop(t, None)
            return
        if request.action == "subscribe":  # new tokens start in quote mode, up to the cap
            new = [t for t in tokens if t not in modes]
            room = max(self.max_per_connection - len(modes), 0)
            if len(new) > room:
                await self.send_text(ErrorMessage("Subscription limit exceeded (3000 per connection)"), client)
            changed = new[:room]
        else:
            changed = [t for t in tokens if t in modes]
        modes.update(dict.fromkeys(changed, request.mode or KiteMode.QUOTE))
        if changed and not self.mute and not self.heartbeats_only:
            snapshots = {t: self.market.snapshot(self.listings[t].exchange, self.listings[t].symbol) for t in changed}
            await self._send_packets(client, snapshots, {t: modes[t] for t in changed})

    async def on_tick(self, now_ms: int) -> None:
        tokens = {t for conn in self.connections for t in conn.modes}
        ticks = {t: self.market.advance(self.listings[t].exchange, self.listings[t].symbol, now_ms) for t in tokens}
        for conn in self.connections:
            await self._send_packets(conn, ticks, conn.modes)

    async def _send_packets(self, client: SimClient, ticks: dict[int, Tick], modes: dict[int, KiteMode]) -> None:
        """The packets of `modes` (token -> mode) from `ticks`, in frames of up to PACKETS_PER_FRAME."""
        packets = [codec.encode_packet(codec.packet_from_tick(ticks[t], t, mode)) for t, mode in modes.items()]
        for start in range(0, len(packets), PACKETS_PER_FRAME):
            await self.send(client, codec.encode_frame(packets[start : start + PACKETS_PER_FRAME]))

    async def send(self, client: SimClient, data: bytes | str) -> None:
        await super().send(client, data)
        if self.record and isinstance(data, bytes) and len(data) > 1:
            self.recorded.append((client.ident, data))


def simulator_for(options: FeedOptions) -> KiteSimulator:
    """The simulator a local feed starts (`zerodha-simulator`)."""
    beat = min(1.0, options.stall_timeout / 3.0)  # Kite beats about once a second; never slower than a stall
    return KiteSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed, heartbeat_interval=beat)


def adapter_for(sim: KiteSimulator, options: FeedOptions) -> BrokerAdapter:
    """The production adapter with `sim`'s API key; its token source is what the simulator issued last."""
    from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter

    local = dataclasses.replace(options, ws_url=sim.url, instruments=sim.instruments_url, cache_dir=None)
    return KiteAdapter(local, api_key=sim.api_key, access_token=lambda: sim.current_token)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common_arguments(parser, DEFAULT_PORT)
    parser.add_argument("--api-key", default="sim_api_key", help="accepted api_key (default sim_api_key)")
    parser.add_argument("--access-token", default="sim_access_token", help="accepted access_token")


async def serve(args: argparse.Namespace) -> None:
    """Serve until cancelled."""
    sim = KiteSimulator(
        args.host, args.port, args.api_key, args.access_token, ticks_per_second=args.ticks_per_second, seed=args.seed
    )
    where = f"ticker {sim.url}?api_key={sim.api_key}&access_token=..., instruments {sim.instruments_url}"
    await serve_until_cancelled(sim, where)
