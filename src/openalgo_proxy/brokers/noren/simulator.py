"""A local Noren OMS server with a live simulated market, on the simulator kit, in any member's dialect.

One aiohttp server, one port:
- `GET <member path>` (e.g. `/NorenWSAPI/`): the WebSocket. The first frame must be the member's
  login (dialect `a`, `c` or AliceBlue's); it is acknowledged (`ak`/`ck`/`cf`) or refused with a
  not-OK acknowledgement and a close. Then `t`/`d` subscribe (answered by one full `tk`/`dk` per key,
  then `tf`/`df` updates carrying only the fields that changed), `u`/`ud` unsubscribe (`uk`/`udk`),
  `o` order updates (`ok`, then `om` pushed by `push_order()`), and the heartbeat `{"t":"h"}` (`hk`);
  protocol pings (the SDK's `{"t":"h"}` ping payload) are answered by the kit.
- `GET /<EXCH>_symbols.txt.zip`: the member's zipped instrument masters of the simulated universe.
Every text frame in both directions is kept in `frames` (client ident, "in"/"out", text) for
byte-level assertions. Fault switches: the kit's, plus `rotate_token()`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.noren import codec
from openalgo_proxy.brokers.noren.codec import Key
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.instruments import decimals, file_name, listing_key, master_files
from openalgo_proxy.brokers.noren.members import (
    DIALECT_MEMBERS,
    DIALECTS,
    MEMBERS,
    Member,
    account_id,
    member,
    sha256_hex,
)
from openalgo_proxy.brokers.simkit import SimClient, SimulatorServer
from openalgo_proxy.model import Tick

log = logging.getLogger(__name__)

DEFAULT_USER_ID = "FA12345"
DEFAULT_TOKEN = "sim-noren-daily-token"


class NorenClient(SimClient):
    """One connection: `subs` is key -> "t"|"d"; `last` the fields last sent per key."""

    def __init__(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> None:
        super().__init__(ident, account, request, ws)
        self.last: dict[Key, dict[str, str]] = {}
        self.orders = False


class NorenSimulator(SimulatorServer):
    """In-process Noren server: `await start()`, use `.ws_url` / `.instruments_url`, `await stop()`."""

    label = "noren simulator"
    first_frame_auth = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        broker: str | Member = "shoonya",
        user_id: str = DEFAULT_USER_ID,
        token: str = DEFAULT_TOKEN,
        ticks_per_second: float = 2.0,
        seed: int | None = None,
        listings: tuple[Listing, ...] = UNIVERSE,
        max_connections: int = 5,
        max_subscriptions: int = 3000,
    ) -> None:
        super().__init__(
            host, port, ticks_per_second=ticks_per_second, seed=seed, listings=listings, max_connections=max_connections
        )
        self.member: Member = broker if isinstance(broker, Member) else member(broker)
        self.ws_path = self.member.ws_path  # type: ignore[misc]  # per instance: the member's path
        self.user_id = user_id
        self.token = token
        self.max_subscriptions = max_subscriptions
        self.listings: dict[Key, Listing] = {listing_key(lst): lst for lst in listings}
        self._masters = master_files(listings)
        self.frames: deque[tuple[int, str, str]] = deque(maxlen=50_000)
        self.logins: list[dict[str, Any]] = []
        self.login_refusals = 0
        self.heartbeat_requests = 0
        self.invalid_requests = 0

    # -- kit hooks ---------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        for exchange in self._masters:
            app.router.add_get("/" + file_name(exchange), self._master_handler)

    def authorize(self, request: web.Request) -> str:
        return "noren"  # the account is known only from the first frame

    def new_client(self, ident: int, account: str, request: web.Request, ws: web.WebSocketResponse) -> SimClient:
        return NorenClient(ident, account, request, ws)

    def expected_login(self) -> dict[str, str]:
        uid = account_id(self.member, self.user_id)
        if self.member.dialect == "a":
            return {"t": "a", "uid": uid, "actid": uid, "accesstoken": self.token, "source": self.member.source}
        secret = sha256_hex(sha256_hex(self.token)) if self.member.dialect == "alice" else self.token
        return {"t": "c", "uid": uid, "actid": uid, "susertoken": secret, "source": self.member.source}

    async def authenticate(self, client: SimClient, message: str | bytes) -> bool:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        self.frames.append((client.ident, "in", text))
        try:
            login = json.loads(text)
        except ValueError:
            login = None
        ack = self.member.ack_type()
        ok = isinstance(login, dict) and not self.reject_handshakes and login == self.expected_login()
        if not ok:
            self.login_refusals += 1
            refusal = {"t": ack, "s": "NOT_OK", "emsg": "Session Expired :  Invalid Session Key"}
            if ack == "cf":
                refusal = {"t": "cf", "k": "NOT_OK", "emsg": "Invalid session"}
            await self._send_json(client, refusal)
            return False
        assert isinstance(login, dict)
        self.logins.append(login)
        if self.mute:
            return True  # logged in, but the acknowledgement never comes (a stalled server)
        await self._send_json(client, {"t": "cf", "k": "OK"} if ack == "cf" else {"t": ack, "s": "OK"})
        if not self.member.orders_need_request:
            assert isinstance(client, NorenClient)
            client.orders = True
        return True

    async def on_text(self, client: SimClient, text: str) -> None:
        assert isinstance(client, NorenClient)
        self.frames.append((client.ident, "in", text))
        try:
            request = json.loads(text)
            kind = request["t"]
        except (ValueError, KeyError, TypeError):
            self.invalid_requests += 1
            return
        if kind == "h":
            self.heartbeat_requests += 1
            if not self.mute:
                await self._send_json(client, {"t": "hk"})
            return
        if kind == "o":
            client.orders = True
            await self._send_json(client, {"t": "ok"})
            return
        if kind not in ("t", "d", "u", "ud") or not isinstance(request.get("k"), str):
            self.invalid_requests += 1
            return
        try:
            keys = [codec.parse_key(k) for k in request["k"].split("#") if k]
        except codec.NorenCodecError:
            self.invalid_requests += 1
            return
        if kind in ("u", "ud"):
            want = "t" if kind == "u" else "d"
            for key in keys:
                if client.subs.get(key) == want:
                    del client.subs[key]
                    client.last.pop(key, None)
            await self._send_json(client, {"t": kind + "k", "k": request["k"]})
            return
        if len(client.subs.keys() | set(keys)) > self.max_subscriptions:
            self.invalid_requests += 1
            return
        for key in keys:
            client.subs[key] = kind
            client.last.pop(key, None)
        if self.mute:
            return
        now_s = int(dt.datetime.now(dt.UTC).timestamp())
        for key in keys:
            listing = self.listings.get(key)
            if listing is None:
                continue
            tick = self.market.snapshot(listing.exchange, listing.symbol)
            await self._send_full(client, key, listing, tick, now_s)

    def expire_credentials(self) -> None:
        """A new day's token: the old one is refused on the next login; open connections are cut."""
        self.token = secrets.token_urlsafe(18)
        self.drop_connections()

    def malformed_frame(self) -> bytes:
        return b'{"t":"tk","e":"NSE","tk":"2885","lp":"12.3.4"}'

    async def send_malformed(self, data: bytes | None = None) -> None:
        for client in list(self.clients.values()):
            if client.authenticated:
                await self.send(client, (self.malformed_frame() if data is None else data).decode())

    # -- observability and faults ------------------------------------------------------------------

    @property
    def instruments_url(self) -> str:
        return self.base_url + "/"

    def sent_to(self, ident: int) -> list[str]:
        return [text for who, way, text in self.frames if who == ident and way == "out"]

    def received_from(self, ident: int) -> list[str]:
        return [text for who, way, text in self.frames if who == ident and way == "in"]

    def subscribed(self) -> dict[Key, str]:
        out: dict[Key, str] = {}
        for client in self.clients.values():
            out.update(client.subs)
        return out

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        return {(lst.exchange, lst.symbol) for key in self.subscribed() if (lst := self.listings.get(key))}

    def secrets(self) -> list[str]:
        return [self.token]

    async def rotate_token(self, new_token: str | None = None) -> str:
        """A new day's token: open connections are closed, the old token is refused from now on."""
        self.token = new_token or secrets.token_urlsafe(18)
        for client in list(self.clients.values()):
            await client.ws.close(code=1000, message=b"session expired")
        return self.token

    async def push_order(self, message: dict[str, str]) -> int:
        """Send one `om` (with `t` added) to every connection subscribed to order updates."""
        body = {"t": "om", **message}
        sent = 0
        for client in list(self.clients.values()):
            if isinstance(client, NorenClient) and client.authenticated and client.orders:
                await self._send_json(client, body)
                sent += 1
        return sent

    # -- wire --------------------------------------------------------------------------------------

    async def send(self, client: SimClient, data: bytes | str) -> None:
        if isinstance(data, str) and not client.ws.closed:
            self.frames.append((client.ident, "out", data))
        await super().send(client, data)

    async def _send_json(self, client: SimClient, body: dict[str, str]) -> None:
        await self.send(client, codec.encode(body))

    async def _master_handler(self, request: web.Request) -> web.Response:
        exchange = request.path.strip("/").split("_", 1)[0]
        return web.Response(body=self._masters[exchange], content_type="application/zip")

    def _fields(self, key: Key, listing: Listing, tick: Tick, depth: bool, now_s: int) -> dict[str, str]:
        ltt = dt.datetime.fromtimestamp(tick.ltt / 1000 if tick.ltt else now_s, codec.IST).strftime("%H:%M:%S")
        return codec.tick_fields(tick, decimals(key[0]), depth, now_s, ltt)

    async def _send_full(self, client: NorenClient, key: Key, listing: Listing, tick: Tick, now_s: int) -> None:
        depth = client.subs[key] == "d"
        fields = self._fields(key, listing, tick, depth, now_s)
        client.last[key] = fields
        places = decimals(key[0])
        head = {
            "t": "dk" if depth else "tk",
            "e": key[0],
            "tk": key[1],
            "ts": _trading_symbol(listing),
            "pp": str(places),
            "ls": str(listing.lot_size),
            "ti": f"{listing.tick_size:.{places}f}",
        }
        await self._send_json(client, {**head, **fields})

    async def on_tick(self, now_ms: int) -> None:
        clients = [c for c in self.clients.values() if isinstance(c, NorenClient) and c.authenticated]
        wanted = {key for client in clients for key in client.subs}
        ticks: dict[Key, tuple[Listing, Tick]] = {}
        for key in wanted:
            listing = self.listings.get(key)
            if listing is not None:
                ticks[key] = (listing, self.market.advance(listing.exchange, listing.symbol, now_ms))
        now_s = now_ms // 1000
        for client in clients:
            for key, kind in list(client.subs.items()):
                found = ticks.get(key)
                if found is None:
                    continue
                listing, tick = found
                fields = self._fields(key, listing, tick, kind == "d", now_s)
                previous = client.last.get(key)
                if previous is None:
                    continue  # its full acknowledgement has not gone out yet
                changed = codec.changed_fields(previous, fields)
                if not changed:
                    continue
                client.last[key] = fields
                await self._send_json(
                    client, {"t": "df" if kind == "d" else "tf", "e": key[0], "tk": key[1], **changed}
                )


def _trading_symbol(listing: Listing) -> str:
    if listing.exchange == "NSE":
        return f"{listing.symbol}-EQ"
    return listing.symbol


def add_arguments(parser: argparse.ArgumentParser, dialect: str = "shoonya") -> None:
    parser.add_argument(
        "--dialect",
        default=dialect,
        choices=[*MEMBERS, *DIALECTS],
        help="the member whose URL path and login to speak (or a bare dialect a, c, alice)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8768, help="port of the WebSocket and the masters (default 8768)")
    parser.add_argument("--user-id", default=DEFAULT_USER_ID, help="user id the simulator accepts")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="daily token (AliceBlue: session id) it accepts")
    parser.add_argument("--ticks-per-second", type=float, default=2.0, help="ticks per instrument per second")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the simulated market")


async def serve(args: argparse.Namespace) -> None:
    """`openalgo-proxy simulate noren --dialect NAME`: serve until cancelled."""
    broker = DIALECT_MEMBERS.get(args.dialect) or member(args.dialect)
    sim = NorenSimulator(
        args.host,
        args.port,
        broker=broker,
        user_id=args.user_id,
        token=args.token,
        ticks_per_second=args.ticks_per_second,
        seed=args.seed,
    )
    await sim.start()
    log.info(
        "noren simulator (%s, dialect %s): WebSocket %s, masters %s, user id %s",
        broker.name,
        sim.member.dialect,
        sim.ws_url,
        sim.instruments_url,
        sim.user_id,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


@dataclasses.dataclass(frozen=True)
class _IssuedCredentials(NorenCredentials):
    """The simulator's current token, whatever it rotated to (what a daily login job would write)."""

    issued: Callable[[], str] = dataclasses.field(default=lambda: "", repr=False, compare=False)

    def token(self) -> str:
        return self.issued()


@dataclasses.dataclass(frozen=True)
class MemberSimulator:
    """The registry's simulator entry for one member: `simulate NAME`, `NAME-simulator`, the contract tests."""

    name: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser, dialect=self.name)

    async def serve(self, args: argparse.Namespace) -> None:
        await serve(args)

    def simulator_for(self, options: FeedOptions) -> NorenSimulator:
        """The simulator a local feed starts (`NAME-simulator`), speaking this member's dialect."""
        return NorenSimulator(broker=self.name, ticks_per_second=options.ticks_per_second, seed=options.seed)

    @staticmethod
    def adapter_for(sim: NorenSimulator, options: FeedOptions) -> BrokerAdapter:
        """The production adapter with `sim`'s user id and its latest token, the feed's other options kept."""
        from openalgo_proxy.brokers.noren.adapter import NorenAdapter

        local = dataclasses.replace(options, ws_url=sim.ws_url, instruments=sim.instruments_url, cache_dir=None)
        credentials = _IssuedCredentials(sim.user_id, issued=lambda: sim.token)
        per = options.max_per_connection or None
        return NorenAdapter(local, sim.member, credentials, max_subscriptions=per, backoff_base=options.backoff_base)


shoonya = MemberSimulator("shoonya")
flattrade = MemberSimulator("flattrade")
zebu = MemberSimulator("zebu")
tradesmart = MemberSimulator("tradesmart")
definedge = MemberSimulator("definedge")
aliceblue = MemberSimulator("aliceblue")

__all__ = ["MemberSimulator", "NorenSimulator", "add_arguments", "serve"]
