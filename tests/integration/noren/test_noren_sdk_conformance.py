"""Conformance with the vendor Noren SDKs against our simulator, frames asserted in both directions.

`NorenRestApiOAuth` 0.0.41 (dialect `a`, installed in the venv) and `NorenRestApiPy` 0.0.22 (dialect
`c`; it installs the same top-level package, so `make venv` puts it in `.venv/sdk/norenrestapipy`)
each run in their own process: they log in, subscribe touchline, depth and orders, and must receive
every message our simulator sent, unchanged and in order; the simulator must receive exactly the
frames the SDK is known to send.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from openalgo_proxy.brokers.noren.members import DIALECT_MEMBERS
from openalgo_proxy.brokers.noren.simulator import NorenSimulator

from ...support import wait_for

pytestmark = pytest.mark.timeout(60)

CLIENT = Path(__file__).with_name("norenapi_client.py")
ROOT = Path(__file__).resolve().parents[3]
SDK_PATHS = {"a": None, "c": ROOT / ".venv" / "sdk" / "norenrestapipy"}
ORDER = {
    "norenordno": "24120600000123", "uid": "FA12345", "actid": "FA12345", "exch": "NSE", "tsym": "RELIANCE-EQ",
    "trantype": "B", "qty": "10", "prc": "1480.50", "trgprc": "0.00", "prctyp": "LMT", "prd": "I",
    "status": "COMPLETE", "fillshares": "10", "avgprc": "1480.45", "reporttype": "Fill",
}  # fmt: skip


def sdk_env(dialect: str) -> dict[str, str]:
    env = dict(os.environ)
    extra = SDK_PATHS[dialect]
    if extra is not None:
        if not (extra / "NorenRestApiPy").is_dir():
            pytest.skip(f"NorenRestApiPy is not installed in {extra} (run `make venv`)")
        env["PYTHONPATH"] = os.pathsep.join([str(extra), env.get("PYTHONPATH", "")])
    else:
        pytest.importorskip("NorenRestApiPy.NorenApi")
    return env


async def run_sdk(sim: NorenSimulator, dialect: str, token: str, linger: float = 0.0) -> dict[str, Any]:
    env = sdk_env(dialect) | {"NOREN_SDK_LINGER": str(linger)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), str(sim.port), sim.ws_path, sim.user_id, token, dialect,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(45):
            if token == sim.token:
                await wait_for(lambda: any(getattr(c, "orders", False) for c in sim.clients.values()), within=20)
                await wait_for(lambda: len(sim.subscribed()) == 3, within=10)
                await sim.push_order(ORDER)
            stdout, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["a", "c"])
async def test_the_vendor_sdk_logs_in_subscribes_and_receives_our_messages_unchanged(dialect: str) -> None:
    async with NorenSimulator(broker=DIALECT_MEMBERS[dialect], ticks_per_second=20.0, seed=9) as sim:
        result = await run_sdk(sim, dialect, sim.token, linger=3.5)
        assert result["opened"] and result["errors"] == []
        ident = next(who for who, way, _ in sim.frames if way == "in")
        # client -> server: exactly the SDK's frames (json.dumps spacing), in order
        login = (
            {"t": "a", "uid": sim.user_id, "actid": sim.user_id, "accesstoken": sim.token, "source": "API"}
            if dialect == "a"
            else {"t": "c", "uid": sim.user_id, "actid": sim.user_id, "susertoken": sim.token, "source": "API"}
        )
        assert sim.received_from(ident) == [
            json.dumps(login),
            '{"t": "t", "k": "NSE|2885#NSE|26000"}',
            '{"t": "d", "k": "NSE|11536"}',
            f'{{"t": "o", "actid": "{sim.user_id}"}}',
            '{"t": "u", "k": "NSE|2885"}',
            '{"t": "ud", "k": "NSE|11536"}',
        ]
        # the SDK's keepalive: protocol pings whose payload is the heartbeat
        assert sim.pings_received >= 1 and sim.last_ping_payload == b'{"t":"h"}'
        # server -> client: every market message we sent reached the SDK unchanged and in order
        sent = [json.loads(t) for t in sim.sent_to(ident)]
        assert sent[0] == {"t": "ak" if dialect == "a" else "ck", "s": "OK"}
        market = [m for m in sent if m["t"] in ("tk", "tf", "dk", "df")]
        assert result["received"] == market[: len(result["received"])]
        assert len(result["received"]) >= len(market) - 12  # only what was in flight at close is missing
        kinds = [m["t"] for m in result["received"]]
        assert kinds.count("tk") == 2 and kinds.count("dk") == 1 and "tf" in kinds and "df" in kinds
        assert result["orders"] == [{"t": "om", **ORDER}]
        assert {"t": "ok"} in sent and {"t": "uk", "k": "NSE|2885"} in sent


@pytest.mark.parametrize("dialect", ["a", "c"])
async def test_the_vendor_sdk_sees_a_refused_login_as_an_error(dialect: str) -> None:
    async with NorenSimulator(broker=DIALECT_MEMBERS[dialect], ticks_per_second=5.0) as sim:
        result = await run_sdk(sim, dialect, "wrong-token")
        assert not result["opened"]
        ack = "ak" if dialect == "a" else "ck"
        assert result["errors"] and result["errors"][0] == {
            "t": ack, "s": "NOT_OK", "emsg": "Session Expired :  Invalid Session Key",
        }  # fmt: skip
        assert sim.login_refusals >= 1 and not sim.logins
