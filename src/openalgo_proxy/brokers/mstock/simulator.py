"""A local mStock Type B server (`openalgo-proxy simulate mstock`): the Angel simulator with mStock's wire.

It differs from the Angel simulator in what mStock differs in: login by query string
(`/?ACCESS_TOKEN=..&API_KEY=..`, HTTP 401 otherwise), the instrument master at
`/openapi/typeb/instruments/OpenAPIScripMaster` (NSE and BSE segments only), timestamps in seconds
since 1980, and, with `packets_per_frame` > 1, several packets per frame behind a count/size header.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from aiohttp import web

from openalgo_proxy.brokers.angel import codec as angel
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.mstock import codec
from openalgo_proxy.brokers.mstock.adapter import EXCHANGES
from openalgo_proxy.brokers.simkit import SimClient, common_arguments, serve_until_cancelled

MASTER_PATH = "/openapi/typeb/instruments/OpenAPIScripMaster"
LISTINGS = tuple(lst for lst in UNIVERSE if lst.exchange in EXCHANGES)


class MStockSimulator(AngelSimulator):
    ws_path = "/"
    label = "mstock simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = "sim-mstock-key",
        access_token: str = "sim-mstock-token",
        packets_per_frame: int = 1,
        listings: tuple[Listing, ...] = LISTINGS,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, api_key=api_key, listings=listings, **kwargs)
        self.current_token = access_token
        self._tokens = {access_token}
        self._generation = 0
        self.packets_per_frame = packets_per_frame
        self._batch: dict[int, list[bytes]] | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get(MASTER_PATH, self._master_handler)

    @property
    def instruments_url(self) -> str:
        return self.base_url + MASTER_PATH

    def authorize(self, request: web.Request) -> str | web.Response:
        token, key = request.query.get("ACCESS_TOKEN", ""), request.query.get("API_KEY", "")
        if self.reject_handshakes or key != self.api_key or token not in self._tokens:
            return web.Response(status=401, text="Invalid access token or API key")
        return key

    def expire_credentials(self) -> None:
        self._generation += 1
        self.current_token = f"sim-mstock-token-{self._generation}"
        self._tokens = {self.current_token}

    def secrets(self) -> list[str]:
        return [*self._tokens, self.current_token]

    def wire(self, packet: angel.AngelPacket) -> bytes:
        if isinstance(packet, angel.MarketPacket):
            packet = codec.to_wire(packet)
        return angel.encode_packet(packet)

    async def send(self, client: SimClient, data: bytes | str) -> None:
        if self._batch is not None and isinstance(data, bytes):
            self._batch.setdefault(client.ident, []).append(data)
            return
        await super().send(client, data)

    async def on_tick(self, now_ms: int) -> None:
        if self.packets_per_frame <= 1:
            await super().on_tick(now_ms)
            return
        self._batch = {}
        try:
            await super().on_tick(now_ms)
        finally:
            batch, self._batch = self._batch, None
        for ident, packets in batch.items():
            client = self.clients.get(ident)
            for size in sorted({len(p) for p in packets}):
                same = [p for p in packets if len(p) == size]
                for start in range(0, len(same), self.packets_per_frame):
                    if client is not None:
                        await self.send(client, codec.encode_frame(same[start : start + self.packets_per_frame]))


def simulator_for(options: FeedOptions) -> MStockSimulator:
    return MStockSimulator(ticks_per_second=options.ticks_per_second, seed=options.seed)


def adapter_for(sim: MStockSimulator, options: FeedOptions) -> BrokerAdapter:
    from openalgo_proxy.brokers.mstock.adapter import MStockAdapter

    local = dataclasses.replace(options, ws_url=sim.ws_url.rstrip("/"), instruments=sim.instruments_url, cache_dir=None)
    return MStockAdapter(local, api_key=sim.api_key, access_token=lambda: sim.current_token)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common_arguments(parser, 8768)
    parser.add_argument("--api-key", default="sim-mstock-key", help="API_KEY the simulator accepts")
    parser.add_argument("--access-token", default="sim-mstock-token", help="ACCESS_TOKEN the simulator accepts")
    parser.add_argument("--packets-per-frame", type=int, default=1, help="packets batched in one frame")


async def serve(args: argparse.Namespace) -> None:
    sim = MStockSimulator(
        args.host,
        args.port,
        api_key=args.api_key,
        access_token=args.access_token,
        packets_per_frame=args.packets_per_frame,
        ticks_per_second=args.ticks_per_second,
        seed=args.seed,
    )
    await serve_until_cancelled(sim, f"ws {sim.ws_url}?ACCESS_TOKEN=...&API_KEY=..., master {sim.instruments_url}")
