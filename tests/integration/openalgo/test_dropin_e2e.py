"""Drop-in end to end through real processes: OpenAlgo's keys, its broker session, its bridge, its stats file."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import pytest
import websockets

from tests.integration.openalgo.conftest import DropIn, drop_in
from tests.openalgo_support import publish_until
from tests.postgres_support import PASSWORD, create_database
from tests.support import Client, client, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]

SUBSCRIBE = {"action": "subscribe", "symbols": [{"symbol": "RELIANCE", "exchange": "NSE"}], "mode": 1}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_keys_session_and_revoke_end_to_end(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = None
    if backend == "postgresql":
        url = create_database(request.getfixturevalue("postgres_url"), "openalgo_" + secrets.token_hex(4))
    async with drop_in(tmp_path, url) as system:
        await _keys(system)
        await _token_change(system)
        await _revoke(system)
        await _stats(system)
        _no_secrets_in_log(system)


async def _keys(system: DropIn) -> None:
    async with client(system.url) as bad:
        reply = await bad.reply({"action": "authenticate", "api_key": "ab" * 32})
        assert reply["status"] == "error"
    async with client(system.url) as alice:
        reply = await alice.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        assert (reply["type"], reply["status"], reply["user_id"]) == ("auth", "success", "alice")
        started = time.monotonic()
        system.keys["alice"] = system.fake.set_api_key("alice")  # the user regenerates the key in OpenAlgo
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await alice.recv(within=12)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert time.monotonic() - started < 10
    async with client(system.url) as again:
        reply = await again.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        assert reply["status"] == "success"


async def _token_change(system: DropIn) -> None:
    async with client(system.url) as alice:
        await alice.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        await alice.reply(SUBSCRIBE)
        await alice.market_data(within=10)
        assert system.tokens_seen() == ["tok-1"]
        # OpenAlgo logs in again: a new token in the DB, then CACHE_INVALIDATE_ALL_alice on its ZMQ port
        system.simulator.accept_token("tok-2")
        system.fake.login("alice", "zerodha", "kiteapp:tok-2", client_id="AB1234")
        await publish_until(
            system.fake, lambda: system.fake.invalidate("alice"), lambda: system.tokens_seen() == ["tok-2"]
        )
        alice.market.clear()
        await alice.market_data(within=10)  # streaming again, on the new session


async def _revoke(system: DropIn) -> None:
    async with client(system.url) as alice:
        await alice.reply({"action": "authenticate", "api_key": system.keys["alice"]})
        await alice.reply(SUBSCRIBE)
        await alice.market_data(within=10)
        system.fake.logout("alice")
        await publish_until(
            system.fake, lambda: system.fake.invalidate("alice"), lambda: not system.simulator.connections
        )
        error = await alice.next_reply(within=10)
        assert (error["status"], error["code"]) == ("error", "BROKER_UNAVAILABLE"), error
        attempts = system.simulator.handshake_attempts
        again = await alice.reply(SUBSCRIBE)
        assert (
            "BROKER_UNAVAILABLE" in json.dumps(again)
            or (await alice.next_reply(within=5))["code"] == "BROKER_UNAVAILABLE"
        )
        await asyncio.sleep(1.5)  # a window in which a reconnecting feed would have tried again
        assert system.simulator.handshake_attempts == attempts and not system.simulator.connections
        # the user logs in to the broker again in OpenAlgo: streaming resumes on the new session
        system.simulator.accept_token("tok-3")
        system.fake.login("alice", "zerodha", "kiteapp:tok-3", client_id="AB1234")
        await publish_until(
            system.fake, lambda: system.fake.invalidate("alice"), lambda: system.tokens_seen() == ["tok-3"]
        )
        await eventually_subscribed(alice)


async def eventually_subscribed(app: Client, within: float = 15.0) -> None:
    """Resubscribe (a refused subscription is gone) until ticks flow again."""
    deadline = time.monotonic() + within
    while True:
        await app.send(SUBSCRIBE)
        try:
            await app.market_data(within=1.0)
            return
        except TimeoutError:
            assert time.monotonic() < deadline, "no ticks after the new login"


async def _stats(system: DropIn) -> None:
    path = system.fake.stats_file
    await wait_for(lambda: path.exists() and json.loads(path.read_text())["brokers"] == ["zerodha"], within=15)
    body = json.loads(path.read_text())
    assert set(body) >= {"timestamp", "total_connections", "total_symbols", "clients_connected", "brokers"}
    assert body["brokers"] == ["zerodha"] and abs(body["timestamp"] - time.time()) < 60


def _no_secrets_in_log(system: DropIn) -> None:
    text = system.log()
    assert "openalgo bridge: SUB bound" in text  # the log is the process's real log
    fake = system.fake
    for secret in (fake.pepper, fake.salt, PASSWORD, "tok-1", "tok-2", "tok-3", *system.keys.values()):
        assert secret not in text, "a secret reached the log"
