"""Instrument search end to end: the feed's directory details, the proxy's search action and
suggestions, and the `openalgo-proxy search` command, over real sockets and processes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import trustme

from openalgo_proxy.brokers.market import future_symbol
from tests.support import client, running_system

pytestmark = pytest.mark.slow


async def test_search_and_did_you_mean_over_the_wire() -> None:
    async with running_system() as system, client(system.url) as c:
        reply = await c.reply({"action": "search", "query": "nifty"})
        results = reply["results"]
        assert (results[0]["exchange"], results[0]["symbol"]) == ("NSE_INDEX", "NIFTY")
        fut = next(r for r in results if r["symbol"] == future_symbol("NIFTY"))
        assert (fut["exchange"], fut["instrument_type"], fut["tick_size"], fut["lot_size"]) == ("NFO", "FUT", 0.1, 75)
        reply = await c.reply({"action": "search", "query": "usdinr"})
        (usd,) = reply["results"]
        assert (usd["symbol"], usd["tick_size"], usd["lot_size"]) == (future_symbol("USDINR"), 0.0025, 1000)

        reply = await c.reply({"action": "subscribe", "symbol": "NIFTY", "exchange": "NSE", "mode": 1})
        (entry,) = reply["subscriptions"]
        assert entry["code"] == "SYMBOL_NOT_FOUND" and "did you mean NSE_INDEX:NIFTY" in entry["message"]
        reply = await c.reply({"action": "subscribe", "symbol": "CRUDEOIL", "exchange": "MCX", "mode": 1})
        assert reply["subscriptions"][0]["suggestions"][0] == f"MCX:{future_symbol('CRUDEOIL')}"


async def test_the_search_command_prints_one_line_per_instrument() -> None:
    async with running_system() as system:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "openalgo_proxy", "search", "crude", "--exchange", "MCX", "--url", system.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        (line,) = out.decode().splitlines()
        assert line.split() == [f"MCX:{future_symbol('CRUDEOIL')}", "CRUDEOIL", "FUT", "tick", "1", "lot", "100"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "openalgo_proxy", "search", "zzzzzz", "--url", system.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 1 and out == b"" and b"no instrument matches 'zzzzzz'" in err


async def test_the_search_command_speaks_wss_with_a_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    async with running_system(tls={"cert_file": str(cert_file), "key_file": str(key_file)}) as system:
        assert system.url.startswith("wss://")
        for extra, code in (([], 1), (["--ca", str(ca_file)], 0)):  # untrusted without it, served with it
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "openalgo_proxy", "search", "infy", "--url", system.url, *extra,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == code, err
            if code:
                assert b"certificate" in err.lower() and b"Traceback" not in err
            else:
                assert out.decode().split()[0] == "NSE:INFY"
