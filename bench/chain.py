"""Option chain benchmark: chains recomputed per CPU-second, and leg tick -> chain update latency.

Run: .venv/bin/python -m bench chain (also part of `python -m bench all`).
- compute: one chain of 41 strikes (20 each side of the ATM strike) x 2 legs, prices from a smile,
  recomputed (IV solve + Greeks + the JSON of the message) in a loop; chains per CPU-second on one
  core. Goal >= 2,000.
- latency: a bench feed on loopback ZeroMQ publishes the directory and the legs, the chain service
  (real sockets, in this process) publishes the chain, a SUB receives it. Each leg tick carries a
  new price; the latency is from sending the tick to receiving the first chain that carries it.
  Measured at the default 4 updates a second (conflation included) and at 200 a second (the
  service's own cost).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time

import msgspec
import numpy as np
import zmq

from openalgo_proxy import control, topics
from openalgo_proxy.brokers.market import OPTION_RATE, option_symbol, smile
from openalgo_proxy.bus import Publisher, Subscriber
from openalgo_proxy.chain.book import ChainSpec, OptionChain
from openalgo_proxy.chain.contracts import IST, OptionContract, parse_option, years_to_expiry
from openalgo_proxy.chain.pricing import black_price
from openalgo_proxy.chain.service import ChainService
from openalgo_proxy.model import Mode

TARGET = 2_000
SPOT = 26_050.0
STEP = 50.0


def _expiry() -> dt.date:
    return (dt.datetime.now(IST) + dt.timedelta(days=9)).date()


def _contracts(expiry: dt.date, each_side: int) -> list[OptionContract]:
    out = []
    for i in range(-each_side - 5, each_side + 6):
        for right in ("CE", "PE"):
            contract = parse_option(option_symbol("NIFTY", expiry, SPOT + i * STEP, right))
            assert contract is not None
            out.append(contract)
    return out


def _model_price(strike: float, is_call: bool, expiry: dt.date) -> float:
    years = years_to_expiry(expiry, int(time.time() * 1000))
    forward = SPOT * np.exp(OPTION_RATE * years)
    return float(black_price(forward, strike, years, smile(0.12, forward, strike, years), OPTION_RATE, is_call))


def compute_rate(seconds: float = 2.0, each_side: int = 20) -> tuple[float, float]:
    """(chains per CPU-second, p99 ms of one recompute+encode) for a 41-strike chain."""
    expiry = _expiry()
    contracts = _contracts(expiry, each_side)
    spec = ChainSpec("NIFTY", "NFO", expiry, tuple(contracts), ("NSE_INDEX", "NIFTY"), None, OPTION_RATE, 0.0)
    chain = OptionChain(spec, each_side)
    chain.set_underlying("NSE_INDEX", "NIFTY", SPOT)
    # 16 markets a few ticks apart: every recompute solves prices it has not seen just before
    rng = np.random.default_rng(7)
    base = {c.symbol: _model_price(c.strike, c.is_call, expiry) for c in contracts}
    for symbol, price in base.items():
        chain.set_leg(symbol, price, price * 0.998, price * 1.002, 1000, 50_000)
    markets = [np.maximum(0.05, chain.ltp * (1 + rng.normal(0, 0.01, chain.ltp.shape))) for _ in range(16)]
    now = int(time.time() * 1000)
    encode = msgspec.json.Encoder().encode
    durations: list[float] = []
    count = 0
    chain.update_atm(now)
    start = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        prices = markets[count % 16]  # the legs ticked (three array copies: negligible)
        chain.ltp[:] = prices
        np.multiply(prices, 0.998, out=chain.bid)
        np.multiply(prices, 1.002, out=chain.ask)
        t0 = time.perf_counter()
        encode(chain.compute(now))
        durations.append(time.perf_counter() - t0)
        count += 1
    cpu = time.process_time() - start
    rate = count / cpu
    p99 = statistics.quantiles(durations, n=100)[98] * 1000
    return rate, p99


async def _latency(interval: float, ticks: int, gap: float) -> list[float]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    feed = Publisher(ctx, "tcp://127.0.0.1:*")
    loop = asyncio.get_running_loop()
    feed.attach(loop)
    expiry = _expiry()
    contracts = _contracts(expiry, 3)
    legs = {c.symbol: c for c in contracts}
    directory = control.InstrumentDirectory(
        broker="bench", symbols={"NFO": sorted(legs), "NSE_INDEX": ["NIFTY"]}, exchanges=["NFO", "NSE_INDEX"]
    )
    service = ChainService("tcp://127.0.0.1:*", [feed.endpoint], interval=interval, ctx=ctx)
    await service.start()
    sent: dict[int, float] = {}  # volume (the tick's seq) -> send time, of ticks no chain carried yet
    latencies: list[float] = []
    atm_symbol = option_symbol("NIFTY", expiry, SPOT, "CE")
    code = expiry.strftime("%d%b%y").upper()

    def on_chain(parts: list[bytes]) -> None:
        """A chain carries the newest tick of the leg, and so every tick sent before it."""
        now = time.perf_counter()
        data = msgspec.json.decode(parts[2])
        for row in data["strikes"]:
            if row["ce"]["symbol"] == atm_symbol:
                carried = row["ce"]["volume"]
                for seq in [seq for seq in sent if seq <= carried]:
                    latencies.append(now - sent.pop(seq))

    reader = Subscriber(ctx, [service.endpoint], on_chain, lambda: None)
    reader.attach(loop)
    reader.subscribe(topics.chain_topic("NFO", "NIFTY", code, 3))
    seq = 0

    def tick(symbol: str, exchange: str, mode: Mode, ltp: float) -> None:
        nonlocal seq
        seq += 1
        body: dict[str, object] = {"symbol": symbol, "exchange": exchange, "ltp": ltp, "volume": seq, "oi": 1000}
        if mode == Mode.DEPTH:
            body["depth"] = {"buy": [{"price": ltp - 0.05}], "sell": [{"price": ltp + 0.05}]}
        feed.publish(topics.bus_topic(exchange, symbol, mode), seq, msgspec.json.encode(body))

    try:
        deadline = time.monotonic() + 10
        while not service.listed.options and time.monotonic() < deadline:
            feed.publish(topics.instruments_topic("bench"), 1, control.encode_directory(directory))
            await asyncio.sleep(0.05)
        for _ in range(1000):  # the chain is built and holds the underlying
            if service.held:
                break
            await asyncio.sleep(0.01)
        tick("NIFTY", "NSE_INDEX", Mode.QUOTE, SPOT)
        await asyncio.sleep(0.3)
        for c in contracts:
            tick(c.symbol, "NFO", Mode.DEPTH, round(_model_price(c.strike, c.is_call, expiry), 2))
        await asyncio.sleep(max(0.3, 2 * interval))
        base = round(_model_price(SPOT, True, expiry), 2)
        for i in range(ticks):
            price = round(base + 0.05 * (i % 40 + 1) * (1 if i % 80 < 40 else -1), 2)
            sent[seq + 1] = time.perf_counter()
            tick(atm_symbol, "NFO", Mode.DEPTH, price)
            await asyncio.sleep(gap)
        await asyncio.sleep(2 * interval + 0.1)
    finally:
        reader.close()
        await service.stop()
        feed.close()
        ctx.term()
    return latencies


def latency_p99(interval: float, ticks: int = 400, gap: float = 0.01) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, samples) from a leg tick to the first chain update carrying it."""
    samples = asyncio.run(_latency(interval, ticks, gap))
    if len(samples) < 10:
        return float("nan"), float("nan"), len(samples)
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[98] * 1000, len(samples)


def run() -> str:
    rate, p99_compute = compute_rate()
    p50_default, p99_default, n_default = latency_p99(0.25, ticks=200, gap=0.02)
    p50_fast, p99_fast, n_fast = latency_p99(0.005, ticks=400, gap=0.01)
    return (
        f"chain: {rate:,.0f} chains/CPU-second (41 strikes x 2 legs, IV+Greeks+JSON; p99 {p99_compute:.2f} ms each;"
        f" goal >= {TARGET:,}); leg tick -> chain update p50/p99 {p50_default:.1f}/{p99_default:.1f} ms at 4/s"
        f" ({n_default} samples, conflation included), {p50_fast:.1f}/{p99_fast:.1f} ms at 200/s ({n_fast} samples)"
    )


if __name__ == "__main__":
    print(run())  # noqa: T201
