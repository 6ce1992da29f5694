"""The Upstox simulator's handshake: bearer check, 302 to a single-use authorised URL, the authorize
endpoint's JSON, and refusals (401 for a bad token, 403 for a used code, 429 for a second connection)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox.simulator import UpstoxSimulator

pytestmark = pytest.mark.timeout(30)


async def test_authorize_returns_a_single_use_url() -> None:
    async with UpstoxSimulator(ticks_per_second=0, seed=1) as sim, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {sim.access_token}", "Accept": "application/json"}
        async with http.get(sim.base_url + "/v3/feed/market-data-feed/authorize", headers=headers) as response:
            assert response.status == 200
            body = await response.json()
        uri = body["data"]["authorized_redirect_uri"]
        assert body["status"] == "success" and body["data"]["authorizedRedirectUri"] == uri
        assert "requestId=" in uri and "code=" in uri
        async with asyncio.timeout(10):
            ws = await connect(uri)  # no headers: the code is the credential
            first = codec.decode(await ws.recv())
            assert first.type == codec.MARKET_INFO
            await ws.close()
            with pytest.raises(InvalidStatus) as refused:
                await connect(uri)  # the code was used
            assert refused.value.response.status_code == 403
        async with http.get(
            sim.base_url + "/v3/feed/market-data-feed/authorize", headers={"Authorization": "Bearer nope"}
        ) as response:
            assert response.status == 401
            assert (await response.json())["errors"][0]["errorCode"] == "UDAPI100050"


async def test_the_feed_url_redirects_and_a_second_connection_is_refused() -> None:
    async with UpstoxSimulator(ticks_per_second=0, seed=1) as sim:
        headers = {"Authorization": f"Bearer {sim.access_token}"}
        async with asyncio.timeout(10):
            first = await connect(sim.feed_url, additional_headers=headers)
            assert sim.redirects == 1 and first.request is not None and "code=" in first.request.path
            with pytest.raises(InvalidStatus) as second:
                await connect(sim.feed_url, additional_headers=headers)
            assert second.value.response.status_code == 429 and sim.redirects == 2
            with pytest.raises(InvalidStatus) as bad:
                await connect(sim.feed_url, additional_headers={"Authorization": "Bearer wrong"})
            assert bad.value.response.status_code == 401 and sim.redirects == 2
            await first.close()
