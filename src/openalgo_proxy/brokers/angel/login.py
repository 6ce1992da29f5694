"""SmartAPI credentials and session tokens: REST login with TOTP, refresh, or static tokens.

Credentials come from the environment (ANGEL_API_KEY, ANGEL_CLIENT_CODE and either ANGEL_PIN +
ANGEL_TOTP_SECRET or ANGEL_JWT_TOKEN + ANGEL_FEED_TOKEN; settings.py). Secrets never appear in a repr or a log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import aiohttp
import pyotp

from openalgo_proxy.brokers.angel.settings import AngelSettings
from openalgo_proxy.brokers.master import today_ist
from openalgo_proxy.errors import BrokerAuthError, BrokerError, BrokerRateLimited, ConfigError

log = logging.getLogger(__name__)

API_URL = "https://apiconnect.angelone.in"
LOGIN_PATH = "/rest/auth/angelbroking/user/v1/loginByPassword"
REFRESH_PATH = "/rest/auth/angelbroking/jwt/v1/generateTokens"


@dataclass(frozen=True)
class AngelCredentials:
    """The account's SmartAPI credentials; only the client code shows in a repr."""

    api_key: str = field(repr=False)
    client_code: str
    pin: str = field(default="", repr=False)
    totp_secret: str = field(default="", repr=False)
    jwt_token: str = field(default="", repr=False)
    feed_token: str = field(default="", repr=False)

    @property
    def can_login(self) -> bool:
        return bool(self.pin and self.totp_secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, settings: AngelSettings | None = None) -> AngelCredentials:
        found = (settings or AngelSettings.load(env)).read_credentials("angel", env)
        creds = cls(*(found.get(c.env, "") for c in AngelSettings.credentials))  # declared in field order
        creds = replace(creds, jwt_token=strip_bearer(creds.jwt_token))
        if not creds.can_login and not (creds.jwt_token and creds.feed_token):
            raise ConfigError(
                "Angel feed needs ANGEL_PIN + ANGEL_TOTP_SECRET (login) or ANGEL_JWT_TOKEN + ANGEL_FEED_TOKEN"
            )
        return creds


def strip_bearer(token: str) -> str:
    return token[7:].strip() if token[:7].lower() == "bearer " else token


@dataclass(frozen=True)
class SessionTokens:
    jwt_token: str = field(repr=False)
    feed_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    day: str = ""  # IST day the tokens were issued
    generation: int = 0


#: what every SmartAPI REST call carries (the client addresses are placeholders the service accepts)
_JSON = {"Content-Type": "application/json", "Accept": "application/json", "X-UserType": "USER", "X-SourceID": "WEB"}
_CLIENT = {"X-ClientLocalIP": "127.0.0.1", "X-ClientPublicIP": "127.0.0.1", "X-MACAddress": "00:00:00:00:00:00"}


_HTTP_ERRORS: dict[int, type[BrokerError]] = {401: BrokerAuthError, 403: BrokerAuthError, 429: BrokerRateLimited}


def smartapi_headers(api_key: str, jwt_token: str = "") -> dict[str, str]:
    auth = {"Authorization": f"Bearer {jwt_token}"} if jwt_token else {}
    return _JSON | _CLIENT | {"X-PrivateKey": api_key} | auth


class AngelSession:
    """Holds the current tokens; logs in (or refreshes) on demand and at most once per failure.

    `generation` increases with every new set of tokens, so that N connections rejected with the
    same stale tokens cause one re-login, not N.
    """

    def __init__(
        self,
        credentials: AngelCredentials,
        api_url: str | None = None,
        timeout: float = 15.0,
        clock: type[dt.datetime] = dt.datetime,
    ) -> None:
        self.credentials = credentials
        self.api_url = (api_url or API_URL).rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._tokens: SessionTokens | None = None
        if credentials.jwt_token and credentials.feed_token:
            self._tokens = SessionTokens(credentials.jwt_token, credentials.feed_token, day="")
        self._lock = asyncio.Lock()
        self.logins = 0
        if credentials.can_login:
            try:
                pyotp.TOTP(credentials.totp_secret).now()
            except (ValueError, TypeError):
                raise ConfigError("ANGEL_TOTP_SECRET is not a valid base32 TOTP secret (at least 112 bits)") from None

    def __repr__(self) -> str:
        return f"AngelSession(client_code={self.credentials.client_code!r}, api_url={self.api_url!r})"

    def _today(self) -> str:
        return today_ist(self._clock.now(dt.UTC)).isoformat()

    async def tokens(self) -> SessionTokens:
        """Current tokens; logs in first if there are none or they are from a previous IST day."""
        async with self._lock:
            current = self._tokens
            stale = current is None or (self.credentials.can_login and current.day != self._today())
            if stale:
                self._tokens = await self._login(current.generation + 1 if current else 1)
            assert self._tokens is not None
            return self._tokens

    async def invalidate(self, generation: int) -> None:
        """The broker refused tokens of `generation`: get new ones unless someone already did."""
        async with self._lock:
            current = self._tokens
            if current is not None and current.generation != generation:
                return
            if not self.credentials.can_login:
                raise BrokerAuthError(
                    "Angel refused ANGEL_JWT_TOKEN/ANGEL_FEED_TOKEN and no PIN/TOTP is set to log in again"
                )
            next_gen = (current.generation if current else 0) + 1
            if current is not None and current.refresh_token:
                try:
                    self._tokens = await self._refresh(current, next_gen)
                    return
                except BrokerError as exc:
                    log.warning("angel: token refresh failed (%s); logging in again", exc)
            self._tokens = await self._login(next_gen)

    async def _post(self, path: str, body: dict[str, str], jwt: str = "") -> dict[str, object]:
        url = self.api_url + path
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(url, json=body, headers=smartapi_headers(self.credentials.api_key, jwt)) as response,
            ):
                if response.status != 200:  # 401/403: refused credentials; 429: back off long
                    error = _HTTP_ERRORS.get(response.status, BrokerError)
                    raise error(f"Angel login answered HTTP {response.status}")
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BrokerError(f"Angel login request failed: {exc}") from exc
        if not isinstance(payload, dict):
            raise BrokerError("Angel login answered something that is not a JSON object")
        return payload

    async def _login(self, generation: int) -> SessionTokens:
        creds = self.credentials
        if not creds.can_login:
            raise BrokerAuthError("no ANGEL_PIN/ANGEL_TOTP_SECRET to log in with")
        self.logins += 1
        body = {"clientcode": creds.client_code, "password": creds.pin, "totp": pyotp.TOTP(creds.totp_secret).now()}
        tokens = self._tokens_from(await self._post(LOGIN_PATH, body), "", generation)
        log.info("angel: logged in as %s (session %d)", creds.client_code, generation)
        return tokens

    async def _refresh(self, current: SessionTokens, generation: int) -> SessionTokens:
        payload = await self._post(REFRESH_PATH, {"refreshToken": current.refresh_token}, current.jwt_token)
        tokens = self._tokens_from(payload, current.refresh_token, generation)
        log.info("angel: session tokens refreshed (session %d)", generation)
        return tokens

    def _tokens_from(self, payload: dict[str, object], refresh_token: str, generation: int) -> SessionTokens:
        """The tokens of a login or refresh answer (`refresh_token` if it names none); BrokerAuthError if refused."""
        data = payload.get("data")
        if payload.get("status") is not True or not isinstance(data, dict):
            message = payload.get("message") or "unknown error"
            raise BrokerAuthError(f"Angel login refused: {message} {payload.get('errorcode') or ''}".strip())
        out = {k: str(v) for k, v in data.items() if isinstance(v, str)}
        if not out.get("jwtToken") or not out.get("feedToken"):
            raise BrokerAuthError("Angel login answer lacks jwtToken/feedToken")
        jwt, refresh = strip_bearer(out["jwtToken"]), out.get("refreshToken", refresh_token)
        return SessionTokens(jwt, out["feedToken"], refresh, self._today(), generation)
