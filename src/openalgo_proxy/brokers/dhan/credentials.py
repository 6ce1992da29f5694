"""Dhan credentials: a client id and a daily access token, from the environment or a token file.

`DHAN_CLIENT_ID` (or `[feed.dhan] client_id`) and either `DHAN_ACCESS_TOKEN` or `DHAN_ACCESS_TOKEN_FILE`.
A token file is re-read whenever the feed needs the token (every connect, and after Dhan's 807 "access
token expired"), so a daily token can be replaced on disk without restarting the feed. The token never
appears in logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from openalgo_proxy.brokers.dhan.settings import DhanSettings
from openalgo_proxy.brokers.environment import read_token


@dataclass(frozen=True)
class DhanCredentials:
    client_id: str
    access_token: str = field(default="", repr=False)
    token_file: str | None = None

    def token(self) -> str:
        """The current access token: the token file's first line when one is configured."""
        return read_token("DHAN_ACCESS_TOKEN", self.access_token, self.token_file)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, settings: DhanSettings | None = None) -> DhanCredentials:
        found = (settings or DhanSettings.load(env)).read_credentials("dhan", env)
        return cls(found["DHAN_CLIENT_ID"], found.get("DHAN_ACCESS_TOKEN", ""), found.get("DHAN_ACCESS_TOKEN_FILE"))
