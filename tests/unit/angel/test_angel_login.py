"""Credentials from the environment (masked), SmartAPI login with TOTP against the simulator, refresh."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from openalgo_proxy.brokers.angel.login import AngelCredentials, AngelSession, smartapi_headers, strip_bearer
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.errors import BrokerAuthError, ConfigError

SECRET = "OPENALGOPROXYSIMULATOR23"


def test_from_env_and_masked_repr() -> None:
    env = {"ANGEL_API_KEY": "key-123", "ANGEL_CLIENT_CODE": "A123", "ANGEL_PIN": "4321", "ANGEL_TOTP_SECRET": SECRET}
    creds = AngelCredentials.from_env(env)
    assert creds.can_login
    text = repr(creds) + str(creds)
    for secret in ("key-123", "4321", SECRET):
        assert secret not in text
    assert "A123" in text


def test_static_tokens_strip_bearer() -> None:
    env = {"ANGEL_API_KEY": "k", "ANGEL_CLIENT_CODE": "c", "ANGEL_JWT_TOKEN": "Bearer eyJabc", "ANGEL_FEED_TOKEN": "f"}
    creds = AngelCredentials.from_env(env)
    assert creds.jwt_token == "eyJabc" and not creds.can_login
    assert strip_bearer("eyJx") == "eyJx"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"ANGEL_API_KEY": "k"},
        {"ANGEL_API_KEY": "k", "ANGEL_CLIENT_CODE": "c"},
        {"ANGEL_API_KEY": "k", "ANGEL_CLIENT_CODE": "c", "ANGEL_PIN": "1"},
        {"ANGEL_API_KEY": "k", "ANGEL_CLIENT_CODE": "c", "ANGEL_JWT_TOKEN": "j"},
    ],
)
def test_incomplete_env_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        AngelCredentials.from_env(env)


def test_invalid_totp_secret_fails_loudly() -> None:
    with pytest.raises(ConfigError):
        AngelSession(AngelCredentials("k", "c", pin="1", totp_secret="short"))


def test_smartapi_headers() -> None:
    headers = smartapi_headers("key", "jwt")
    assert headers["X-PrivateKey"] == "key"
    assert headers["X-UserType"] == "USER" and headers["X-SourceID"] == "WEB"
    assert headers["Authorization"] == "Bearer jwt"
    assert {"X-ClientLocalIP", "X-ClientPublicIP", "X-MACAddress", "Content-Type", "Accept"} <= headers.keys()


@pytest.fixture
async def sim() -> AsyncIterator[AngelSimulator]:
    async with AngelSimulator(ticks_per_second=0) as simulator:
        yield simulator


async def test_login_with_totp_and_no_secret_in_logs(sim: AngelSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    session = AngelSession(sim.credentials(), sim.api_url)
    async with asyncio.timeout(5):
        tokens = await session.tokens()
        again = await session.tokens()
    assert tokens is again and tokens.generation == 1
    assert sim.logins == 1 and session.logins == 1
    assert tokens.jwt_token and tokens.feed_token and tokens.refresh_token
    for secret in (sim.pin, sim.totp_secret, sim.api_key, tokens.jwt_token, tokens.feed_token):
        assert secret not in caplog.text


async def test_invalidate_refreshes_once_for_many_callers(sim: AngelSimulator) -> None:
    session = AngelSession(sim.credentials(), sim.api_url)
    async with asyncio.timeout(5):
        first = await session.tokens()
        await asyncio.gather(*(session.invalidate(first.generation) for _ in range(3)))
        second = await session.tokens()
    assert second.generation == 2 and second.jwt_token != first.jwt_token
    assert sim.refreshes == 1 and sim.logins == 1


async def test_refused_login_is_an_auth_error(sim: AngelSimulator) -> None:
    sim.refuse_logins = True
    session = AngelSession(sim.credentials(), sim.api_url)
    async with asyncio.timeout(5):
        with pytest.raises(BrokerAuthError):
            await session.tokens()
    wrong = AngelSession(AngelCredentials(sim.api_key, sim.client_code, pin="0000", totp_secret=SECRET), sim.api_url)
    sim.refuse_logins = False
    async with asyncio.timeout(5):
        with pytest.raises(BrokerAuthError, match="password"):
            await wrong.tokens()


async def test_static_tokens_cannot_be_renewed(sim: AngelSimulator) -> None:
    session = AngelSession(AngelCredentials("k", "c", jwt_token="j", feed_token="f"), sim.api_url)
    tokens = await session.tokens()
    assert tokens.jwt_token == "j" and sim.login_attempts == 0
    with pytest.raises(BrokerAuthError):
        await session.invalidate(tokens.generation)


async def test_tokens_roll_over_with_the_ist_day(sim: AngelSimulator) -> None:
    import datetime as dt

    now = [dt.datetime(2026, 1, 5, 18, 0, tzinfo=dt.UTC)]  # 23:30 IST

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Clock:  # type: ignore[override]
            return now[0]  # type: ignore[return-value]

    session = AngelSession(sim.credentials(), sim.api_url, clock=Clock)
    async with asyncio.timeout(5):
        first = await session.tokens()
        now[0] += dt.timedelta(minutes=20)  # 23:50 IST, same day
        assert await session.tokens() is first
        now[0] += dt.timedelta(minutes=20)  # 00:10 IST, the next day: log in again
        second = await session.tokens()
    assert second.generation == 2 and second.day == "2026-01-06" and sim.logins == 2
