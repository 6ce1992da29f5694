"""What is Noren's own, for every member against the Noren simulator speaking its dialect: the login
frame, touchline/depth subscriptions and their merge, the heartbeat frame, the token file, the caps.
The behaviours every broker shares (stall, malformed input, refused credentials, pool) run in
tests/contract for each member."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.simulator import NorenSimulator
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode

from ...support import wait_for
from .conftest import Collector, make_adapter

pytestmark = pytest.mark.timeout(30)


async def test_dialect_lookup_stream_resubscribe_and_stop(member_sim: NorenSimulator) -> None:
    """Start proves the login on an idle connection; each wanted pair streams; the server's set
    equals the wanted set after a change and after a reconnect; stop closes everything."""
    sim = member_sim
    adapter = make_adapter(sim)
    seen = Collector()
    await adapter.start(seen.on_tick, seen.on_reject)
    try:
        assert set(adapter.exchanges()) >= {"NSE", "NSE_INDEX", "NFO", "MCX", "CDS", "BSE_INDEX"}
        await wait_for(lambda: adapter.status().state is ConnectionState.CONNECTED and bool(sim.logins))
        assert sim.logins[0] == sim.expected_login()
        reliance = adapter.lookup("NSE", "RELIANCE")
        nifty = adapter.lookup("NSE_INDEX", "NIFTY")
        usdinr = adapter.lookup("CDS", future_symbol("USDINR"))
        crude = adapter.lookup("MCX", future_symbol("CRUDEOIL"))
        assert reliance and nifty and usdinr and crude
        assert adapter.lookup("NSE", "NOSUCH") is None
        wanted = {reliance: Mode.QUOTE, nifty: Mode.LTP, usdinr: Mode.QUOTE, crude: Mode.DEPTH}
        await adapter.set_wanted(wanted)
        await wait_for(lambda: {"RELIANCE", "NIFTY", usdinr.symbol, crude.symbol} <= seen.symbols())
        assert sim.subscribed() == {
            ("NSE", "2885"): "t",
            ("NSE", "26000"): "t",
            ("CDS", "1185"): "t",
            ("MCX", "450161"): "d",
        }
        depth = seen.last(crude.symbol)
        assert depth.mode == Mode.DEPTH and len(depth.bids) == 5 and depth.bids[0].price < depth.asks[0].price
        cds = seen.last(usdinr.symbol)
        assert cds.ltp == round(cds.ltp, 4) and cds.ltp > 0
        # a mode change and a removal: the server's set follows exactly
        await adapter.set_wanted({reliance: Mode.DEPTH, nifty: Mode.LTP})
        await wait_for(lambda: sim.subscribed() == {("NSE", "2885"): "d", ("NSE", "26000"): "t"})
        # reconnect: the same set is subscribed again, from fresh full acknowledgements
        before = sim.connections_total
        sim.drop_connections()
        await wait_for(
            lambda: sim.connections_total > before and sim.subscribed() == {("NSE", "2885"): "d", ("NSE", "26000"): "t"}
        )
        count = len(seen.ticks)
        await wait_for(lambda: len(seen.ticks) > count + 4)
        assert adapter.status().reconnects >= 1
    finally:
        await adapter.stop()
    assert adapter.status().state is ConnectionState.CLOSED
    await wait_for(lambda: sim.connection_count == 0)


async def test_every_update_is_merged_into_the_last_full_state(member_sim: NorenSimulator) -> None:
    """Each tick equals the simulator's last full state of the instrument (the merge is lossless)."""
    sim = member_sim
    adapter = make_adapter(sim)
    seen = Collector()
    await adapter.start(seen.on_tick, seen.on_reject)
    try:
        tcs = adapter.lookup("NSE", "TCS")
        assert tcs is not None
        await adapter.set_wanted({tcs: Mode.QUOTE})
        await wait_for(lambda: len(seen.ticks) >= 10)
        client = next(iter(sim.clients.values()))
        sent = sim.sent_to(client.ident)
        updates = [json.loads(t) for t in sent if '"t":"tf"' in t]
        assert updates and all(len(u) < 17 for u in updates)  # updates carry changed fields only
        await wait_for(lambda: abs(seen.last("TCS").ltp - float(client.last[("NSE", "11536")]["lp"])) < 1e-9)
        last = client.last[("NSE", "11536")]
        tick = seen.last("TCS")
        assert (tick.volume, tick.open, tick.high, tick.low, tick.close) == (
            int(last["v"]), float(last["o"]), float(last["h"]), float(last["l"]), float(last["c"]),
        )  # fmt: skip
    finally:
        await adapter.stop()


async def test_heartbeat_is_the_text_frame(member_sim: NorenSimulator) -> None:
    adapter = make_adapter(member_sim)
    seen = Collector()
    await adapter.start(seen.on_tick, seen.on_reject)
    try:
        await wait_for(lambda: member_sim.heartbeat_requests >= 2 and adapter.status().extra["heartbeats"] >= 2)
        client = next(iter(member_sim.clients.values()))
        assert '{"t":"h"}' in member_sim.received_from(client.ident)
    finally:
        await adapter.stop()


@pytest.mark.parametrize("broker", ["shoonya", "definedge"])
async def test_a_refused_login_re_reads_the_token_file(tmp_path: Path, broker: str) -> None:
    async with NorenSimulator(broker=broker, ticks_per_second=20.0) as sim:
        token_file = tmp_path / "token"
        token_file.write_text("yesterdays-token\n")
        adapter = make_adapter(sim, NorenCredentials(sim.user_id, token_file=str(token_file)))
        seen = Collector()
        await adapter.start(seen.on_tick, seen.on_reject)
        try:
            await wait_for(lambda: sim.login_refusals >= 2)
            assert adapter.status().state is not ConnectionState.CONNECTED
            assert adapter.status().extra["login_refusals"] >= 1 or sim.login_refusals >= 2
            token_file.write_text(sim.token + "\n")
            await wait_for(lambda: bool(sim.logins) and adapter.status().state is ConnectionState.CONNECTED)
            # a new day: the server refuses the old token; the file gets the new one
            new = await sim.rotate_token("todays-token")
            refusals = sim.login_refusals
            await wait_for(lambda: sim.login_refusals > refusals)
            token_file.write_text(new)
            logins = len(sim.logins)
            await wait_for(lambda: len(sim.logins) > logins)
            assert sim.logins[-1] == sim.expected_login()
        finally:
            await adapter.stop()


async def test_caps_are_configurable_and_answer_limit_exceeded() -> None:
    async with NorenSimulator(broker="flattrade", ticks_per_second=5.0) as sim:
        adapter = make_adapter(sim, keys_per_message=3, max_subscriptions=4)
        seen = Collector()
        await adapter.start(seen.on_tick, seen.on_reject)
        try:
            names = ["RELIANCE", "TCS", "INFY", "SBIN", "ITC", "LT"]
            wanted = {adapter.lookup("NSE", n): Mode.LTP for n in names}
            await adapter.set_wanted({i: m for i, m in wanted.items() if i is not None})
            await wait_for(lambda: len(sim.subscribed()) == 4)
            assert {r.code for r in seen.rejections} == {ErrorCode.LIMIT_EXCEEDED} and len(seen.rejections) == 2
            client = next(iter(sim.clients.values()))
            subs = [json.loads(t) for t in sim.received_from(client.ident) if t.startswith('{"t":"t"')]
            assert [len(s["k"].split("#")) for s in subs] == [3, 1]
        finally:
            await adapter.stop()
