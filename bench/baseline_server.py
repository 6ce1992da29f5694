"""Naive reference server: the seed's design, kept as the floor the proxy is compared against.

A `websockets` asyncio server; the bus read with zmq.asyncio, one awaited ``recv_multipart`` per
message; per tick the data is decoded once, then per subscribed client the whole envelope is
``json.dumps``-ed and sent with ``await ws.send`` (so one slow client stalls everyone).
Speaks only what the swarm needs: subscribe (symbols list form) and market_data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

import zmq
import zmq.asyncio
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.common import BROKER, emit, raise_fd_limit, watch_stdin
from openalgo_proxy import topics
from openalgo_proxy.bus import SEQ
from openalgo_proxy.tasks import cancel_and_wait


class Baseline:
    def __init__(self, bus: str) -> None:
        self.ctx = zmq.asyncio.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SNDHWM, 0)
        self.sub.setsockopt(zmq.RCVHWM, 200_000)
        self.sub.connect(bus)
        self.subscribers: dict[bytes, set[ServerConnection]] = {}

    async def handler(self, ws: ServerConnection) -> None:
        mine: set[bytes] = set()
        try:
            async for raw in ws:
                request: Any = json.loads(raw)
                if not isinstance(request, dict) or request.get("action") != "subscribe":
                    await ws.send(json.dumps({"type": "error", "status": "error", "code": "INVALID_ACTION"}))
                    continue
                results = []
                for entry in request.get("symbols", []):
                    symbol, exchange = entry["symbol"], entry["exchange"]
                    mode = int(entry.get("mode", 3))
                    topic = topics.bus_topic(exchange, symbol, mode)
                    if topic not in self.subscribers:
                        self.subscribers[topic] = set()
                        self.sub.setsockopt(zmq.SUBSCRIBE, topic)
                    self.subscribers[topic].add(ws)
                    mine.add(topic)
                    results.append({"symbol": symbol, "exchange": exchange, "mode": mode, "status": "success"})
                await ws.send(json.dumps({"type": "subscription", "status": "success", "subscriptions": results}))
        except ConnectionClosed:
            pass
        finally:
            for topic in mine:
                self.subscribers.get(topic, set()).discard(ws)

    async def pump(self) -> None:
        while True:
            topic, raw_seq, data = await self.sub.recv_multipart()
            clients = self.subscribers.get(topic)
            if not clients:
                continue
            key = topics.parse_bus_topic(topic)
            decoded = json.loads(data)
            seq = SEQ.unpack(raw_seq)[0]
            for ws in list(clients):
                message = json.dumps(
                    {
                        "type": "market_data",
                        "topic": topics.client_topic(key.symbol, key.exchange),
                        "symbol": key.symbol,
                        "exchange": key.exchange,
                        "mode": int(key.mode),
                        "broker": BROKER,
                        "seq": seq,
                        "data": decoded,
                    }
                )
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    clients.discard(ws)


async def run(args: argparse.Namespace) -> int:
    raise_fd_limit()
    baseline = Baseline(args.bus)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_stdin(loop, stop)
    async with serve(baseline.handler, "127.0.0.1", args.port, ping_interval=None, max_size=2**20, backlog=4096):
        pump = asyncio.create_task(baseline.pump())
        emit("ready", port=args.port)
        await stop.wait()
        await cancel_and_wait(pump)
    baseline.sub.close(linger=0)
    baseline.ctx.term()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bus", required=True)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
