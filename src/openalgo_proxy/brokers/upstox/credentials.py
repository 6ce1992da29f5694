"""Upstox credentials: the daily access token, from the environment or a token file.

`UPSTOX_ACCESS_TOKEN`, or `UPSTOX_ACCESS_TOKEN_FILE` (a file whose first line is the token). Upstox
tokens stay valid until 03:30 IST the next day; a token file is re-read at every connect, so after
the old token is refused (HTTP 401 at the next handshake) the feed picks up the new day's token
without a restart. `[feed.upstox] full_d30 = true` (or `UPSTOX_FULL_D30=1`) declares an Upstox Plus
account, which may stream 30-level books (`full_d30`). The token never appears in logs or reprs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from openalgo_proxy.brokers.environment import read_token
from openalgo_proxy.brokers.upstox.settings import UpstoxSettings


@dataclass(frozen=True)
class UpstoxCredentials:
    access_token: str = field(default="", repr=False)
    token_file: str | None = None
    full_d30: bool = False  # an Upstox Plus account: 30-level books

    def token(self) -> str:
        """The current access token: the token file's first line when one is configured."""
        return read_token("UPSTOX_ACCESS_TOKEN", self.access_token, self.token_file)

    def authorization(self) -> dict[str, str]:
        """The handshake headers: the bearer token."""
        return {"Authorization": f"Bearer {self.token()}", "Accept": "*/*"}

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, settings: UpstoxSettings | None = None
    ) -> UpstoxCredentials:
        settings = settings or UpstoxSettings.load(env)
        found = settings.read_credentials("upstox", env)
        return cls(found.get("UPSTOX_ACCESS_TOKEN", ""), found.get("UPSTOX_ACCESS_TOKEN_FILE"), settings.full_d30)
