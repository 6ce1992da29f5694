"""The simulator kit with a tiny broker: the four authentication kinds, the cap, the control interface."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from openalgo_proxy.brokers.simkit import SimClient, SimulatorServer
from tests.support import wait_for


class TinyBroker(SimulatorServer):
    label = "tiny simulator"

    def __init__(self, first_frame: bool = False, **kwargs: Any) -> None:
        super().__init__(max_connections=1, ticks_per_second=0, **kwargs)
        self.first_frame = first_frame
        self.token = "t0k3n"
        self.texts: list[str] = []

    @property
    def first_frame_auth(self) -> bool:  # type: ignore[override]
        return self.first_frame

    def authorize(self, request: web.Request) -> str | web.Response:
        if self.first_frame:
            return "acct"  # checked in the first frame instead
        token = request.query.get("token") or request.headers.get("X-Token", "")
        return "acct" if token == self.token and not self.reject_handshakes else web.Response(status=401)

    def redirect(self, request: web.Request) -> str | None:
        if request.query.get("code") == "login":  # header login answered with the real URL
            return f"{self.ws_url}?token={self.token}"
        return None

    async def authenticate(self, client: SimClient, message: str | bytes) -> bool:
        return isinstance(message, str) and json.loads(message).get("token") == self.token

    async def on_text(self, client: SimClient, text: str) -> None:
        self.texts.append(text)
        await self.send(client, "ack")

    async def on_tick(self, now_ms: int) -> None:
        return None

    def expire_credentials(self) -> None:
        self.token = "new"

    def subscribed_instruments(self) -> set[tuple[str, str]]:
        return set()


async def test_query_header_and_redirect_logins_and_the_cap() -> None:
    async with TinyBroker() as sim:
        async with connect(f"{sim.ws_url}?token=t0k3n") as ws:
            await ws.send("hello")
            assert await ws.recv() == "ack"
            with pytest.raises(InvalidStatus) as capped:  # one connection per account
                async with connect(sim.ws_url, additional_headers={"X-Token": "t0k3n"}):
                    pass
            assert capped.value.response.status_code == 429
        await wait_for(lambda: sim.connection_count == 0)
        async with connect(sim.ws_url, additional_headers={"X-Token": "t0k3n"}) as ws:  # header login
            await ws.send("h")
            assert await ws.recv() == "ack"
        await wait_for(lambda: sim.connection_count == 0)
        async with connect(f"{sim.ws_url}?code=login") as ws:  # 302 to the real URL, followed
            await ws.send("r")
            assert await ws.recv() == "ack"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{sim.ws_url}?token=wrong"):
                pass
        assert refused.value.response.status_code == 401 and sim.rejections[401] == 1


async def test_first_frame_login() -> None:
    async with TinyBroker(first_frame=True) as sim:
        async with connect(sim.ws_url) as ws:
            await ws.send(json.dumps({"token": "t0k3n"}))
            await ws.send("after login")
            assert await ws.recv() == "ack" and sim.texts == ["after login"]
        async with connect(sim.ws_url) as ws:
            await ws.send(json.dumps({"token": "bad"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4001 and sim.rejections[4001] == 1


async def test_one_control_interface_over_http() -> None:
    async with TinyBroker() as sim, aiohttp.ClientSession() as http:
        url = f"{sim.base_url}/_simulator"
        async with http.post(url, json={"mute": True, "expire": True}) as response:
            state = await response.json()
        assert state["mute"] is True and sim.mute and sim.token == "new"
        async with http.post(url, json={"nonsense": 1}) as response:
            assert response.status == 400
        async with http.get(url) as response:
            assert (await response.json())["connections"] == 0
