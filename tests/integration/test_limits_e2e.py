"""Roles and limits end to end: every violation gets its documented code and the server keeps
serving a bystander."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from openalgo_proxy.proxy.keystore import KeyStore
from tests.integration.security_support import bystander, close_code, still_served
from tests.support import client, running_system, wait_for

ROLES = {
    "default": {},
    "equity-ltp": {"exchanges": ["nse"], "modes": [1], "max_subscriptions": 2, "max_connections": 2},
}


def _wanted(system: Any) -> set[tuple[str, str, int]]:
    return {(i.exchange, i.symbol, int(m)) for i, m in system.feed.wanted().items()}


async def test_role_forbids_exchanges_and_modes_before_the_bus(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    limited, _ = store.add("viewer", "equity-ltp")
    full, _ = store.add("desk", "default")
    auth = {"mode": "api_key", "keys_file": str(tmp_path / "keys.json"), "roles": ROLES}
    async with (
        running_system(auth=auth) as system,
        bystander(system.url, {"api_key": full}) as other,
        client(system.url) as c,
    ):
        ok = await c.reply({"action": "authenticate", "api_key": limited})
        assert ok["status"] == "success"
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 1},  # exchange not allowed
                    {"symbol": "INFY", "exchange": "NSE", "mode": 3},  # mode not allowed
                    {"symbol": "INFY", "exchange": "NSE", "mode": "quote"},  # mode not allowed
                    {"symbol": "NOSUCH", "exchange": "BSE"},  # forbidden before the symbol is even looked up
                    {"symbol": "SBIN", "exchange": "NSE", "mode": 1},  # allowed
                ],
            }
        )
        codes = [s.get("code") for s in reply["subscriptions"]]
        assert codes == ["FORBIDDEN", "FORBIDDEN", "FORBIDDEN", "FORBIDDEN", None], reply
        assert reply["status"] == "partial"
        single = await c.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE"})  # default mode 3
        assert single["status"] == "error" and single["subscriptions"][0]["code"] == "FORBIDDEN"
        # the allowed one reaches the broker; the forbidden ones never reach the hub, the bus or the broker
        await wait_for(lambda: ("NSE", "SBIN", 1) in _wanted(system))
        assert not {b"NSE_INDEX|NIFTY|1", b"NSE|INFY|3", b"NSE|INFY|2", b"NSE|TCS|3"} & set(system.proxy.hub.topics)
        assert not {("NSE_INDEX", "NIFTY", 1), ("NSE", "INFY", 3), ("NSE", "INFY", 2), ("NSE", "TCS", 3)} & _wanted(
            system
        )
        # role max_subscriptions (2) per connection: LIMIT_EXCEEDED per entry
        more = await c.reply({"action": "subscribe", "symbols": [{"symbol": s, "exchange": "NSE"} for s in ("A", "B")]})
        more = await c.reply(
            {"action": "subscribe", "mode": 1, "symbols": [{"symbol": s, "exchange": "NSE"} for s in ("ITC", "TCS")]}
        )
        assert [s.get("code") for s in more["subscriptions"]] == [None, "LIMIT_EXCEEDED"], more
        await still_served(other)


async def test_connections_per_identity_and_in_total(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    limited, _ = store.add("viewer", "equity-ltp")  # role cap: 2 connections
    other_key, _ = store.add("ops", "default")  # global cap below: 3 connections
    auth = {"mode": "api_key", "keys_file": str(tmp_path / "keys.json"), "roles": ROLES}
    limits = {"max_connections_per_identity": 3}
    async with (
        running_system(auth=auth, limits=limits, proxy={"max_connections": 5}) as s,
        bystander(s.url, {"api_key": other_key}) as other,
    ):
        async with client(s.url) as a, client(s.url) as b, client(s.url) as third:
            for c in (a, b):
                assert (await c.reply({"action": "authenticate", "api_key": limited}))["status"] == "success"
            err = await third.reply({"action": "authenticate", "api_key": limited})
            assert err["code"] == "LIMIT_EXCEEDED"
            assert await close_code(third) == 4029
            assert third.ws.close_reason == "too many connections for this identity"
        # closing frees the slots
        await wait_for(lambda: s.proxy.identities.count("key:viewer") == 0)
        async with client(s.url) as again:
            assert (await again.reply({"action": "authenticate", "api_key": limited}))["status"] == "success"
        # the global per-identity cap (3) for a role without its own
        async with client(s.url) as b1, client(s.url) as b2, client(s.url) as b3:
            assert (await b1.reply({"action": "authenticate", "api_key": other_key}))["status"] == "success"
            assert (await b2.reply({"action": "authenticate", "api_key": other_key}))["status"] == "success"
            assert (await b3.reply({"action": "authenticate", "api_key": other_key}))["code"] == "LIMIT_EXCEEDED"
            # total cap: 5 open (b3 was closed); the 6th is refused with 1013 before it can authenticate
            async with client(s.url) as c5, client(s.url) as c6:
                assert c5 and c6
                await wait_for(lambda: sum(1 for c in s.proxy.connections if c.open and not c.closing) == 5)
                async with client(s.url) as full:
                    assert await close_code(full) == 1013
        await still_served(other)


async def test_rate_limit_then_4029_and_protocol_errors_then_4029() -> None:
    limits = {"commands_per_second": 20, "command_burst": 5, "max_protocol_errors": 5}
    async with running_system(limits=limits) as system, bystander(system.url) as other:
        async with client(system.url) as flooder:
            for i in range(40):
                await flooder.send({"action": "ping", "request_id": i})
            replies = []
            code = None
            try:
                while True:
                    replies.append(await flooder.recv())
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            pongs = [r for r in replies if r["type"] == "pong"]
            limited = [r for r in replies if r.get("code") == "RATE_LIMITED"]
            assert len(pongs) >= 5 and len(limited) >= 1, replies
            assert code == 4029
        async with client(system.url) as sloppy:
            # protocol errors: each answered with its code; past the budget the connection is closed 4029
            bad: list[str | bytes] = ["{nope", '{"action": "fly"}', b"\x00\x01", '{"action": "subscribe"}']
            for message in bad:
                await sloppy.send(message)
                reply = await sloppy.next_reply()
                assert reply["code"] in ("INVALID_JSON", "INVALID_ACTION", "INVALID_PARAMETERS"), reply
            await asyncio.sleep(0.3)  # lets the command bucket refill (the error budget refills at 5 per minute)
            reply = await sloppy.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 9})
            assert reply["code"] == "INVALID_MODE"
            await sloppy.send("[]")
            assert await close_code(sloppy) == 4029
        await still_served(other)


async def test_message_too_big_is_1009() -> None:
    async with running_system(proxy={"max_message_bytes": 1024}) as system, bystander(system.url) as other:
        async with client(system.url) as c:
            await c.send(json.dumps({"action": "ping", "pad": "x" * 2000}))
            assert await close_code(c) == 1009
        await still_served(other)


async def test_unauthenticated_connection_closed_4401_at_deadline(tmp_path: Path) -> None:
    auth = {"mode": "api_key", "keys_file": str(tmp_path / "keys.json"), "api_keys": ["k" * 32], "deadline": 0.6}
    async with running_system(auth=auth) as system, bystander(system.url, {"api_key": "k" * 32}) as other:
        async with client(system.url) as idle:
            assert await close_code(idle, within=5) == 4401
        await still_served(other)


async def test_origin_allowlist_and_no_compression() -> None:
    proxy = {"allowed_origins": ["https://app.example"]}
    async with running_system(proxy=proxy) as system:
        same_origin = f"http://127.0.0.1:{system.proxy.port}"
        for origin in (None, same_origin, "https://app.example"):
            kwargs: dict[str, Any] = {"origin": origin} if origin else {}
            async with client(system.url, **kwargs) as c:
                assert (await c.reply({"action": "ping"}))["type"] == "pong"
                # the client offers permessage-deflate by default; the proxy never negotiates it
                assert c.ws.response is not None
                assert "Sec-WebSocket-Extensions" not in c.ws.response.headers
        for origin in ("https://evil.example", "http://127.0.0.1:1"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with client(system.url, origin=origin):
                    pass
            assert refused.value.response.status_code == 403


async def test_handshake_timeout_aborts_silent_sockets() -> None:
    async with running_system(proxy={"handshake_timeout": 0.5}) as system, bystander(system.url) as other:
        reader, writer = await asyncio.open_connection("127.0.0.1", system.proxy.port)
        writer.write(b"GET / HTTP/1.1\r\n")  # and never finishes the request
        assert await asyncio.wait_for(reader.read(), 5) == b""  # cut by the server
        writer.close()
        await still_served(other)


async def test_pending_handshakes_are_capped() -> None:
    async with (
        running_system(limits={"max_pending_handshakes": 2}, proxy={"handshake_timeout": 30}) as system,
        bystander(system.url) as other,
    ):
        port = system.proxy.port
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await wait_for(lambda: system.proxy.pending_handshakes == 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # cut at once, long before the timeout
        writer.close()
        await still_served(other)
        for _, w in silent:
            w.close()
        await wait_for(lambda: system.proxy.pending_handshakes == 0)
        async with client(system.url) as c:
            assert (await c.reply({"action": "ping"}))["type"] == "pong"
