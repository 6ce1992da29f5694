"""Helpers for the security tests: tokens, a bystander client that must keep receiving ticks, closes."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import websockets

from tests.support import Client, client

SECRET = "s" * 64
PREVIOUS_SECRET = "p" * 64


def token(key: Any = SECRET, algorithm: str = "HS256", ttl: float = 300.0, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + ttl, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def unsigned_token(**claims: Any) -> str:
    """`alg: none`, built by hand as an attacker would."""

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    body = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(body)}."


async def close_code(c: Client, within: float = 5.0) -> int | None:
    """Read until the server closes; the close code it sent."""
    with contextlib.suppress(websockets.ConnectionClosed):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            await c.recv(max(0.01, deadline - time.monotonic()))
    assert c.ws.close_code is not None, "the server did not close the connection"
    return c.ws.close_code


@contextlib.asynccontextmanager
async def bystander(url: str, auth: dict[str, Any] | None = None, **kwargs: Any) -> AsyncIterator[Client]:
    """A well-behaved client subscribed to a liquid symbol; `still_served` proves the server serves it."""
    async with client(url, **kwargs) as c:
        if auth is not None:
            reply = await c.reply({"action": "authenticate", **auth})
            assert reply["status"] == "success", reply
        reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
        assert reply["status"] == "success", reply
        await c.market_data(within=5)
        yield c


async def still_served(c: Client) -> None:
    """The server answers this client now and keeps streaming to it (a tick sent after the pong)."""
    pong = await c.reply({"action": "ping"})
    assert pong["type"] == "pong"
    c.market.clear()
    await c.market_data(within=5)
