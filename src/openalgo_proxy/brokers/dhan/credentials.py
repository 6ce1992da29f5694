"""Dhan credentials: a client id and a daily access token, from the environment or a token file.

`DHAN_CLIENT_ID` and either `DHAN_ACCESS_TOKEN` or `DHAN_ACCESS_TOKEN_FILE`. A token file is re-read
whenever the feed needs the token (every connect, and after Dhan's 807 "access token expired"), so a
daily token can be replaced on disk without restarting the feed. The token never appears in logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from openalgo_proxy.errors import BrokerAuthError, ConfigError


@dataclass(frozen=True)
class DhanCredentials:
    client_id: str
    access_token: str = field(default="", repr=False)
    token_file: str | None = None

    def token(self) -> str:
        """The current access token: the token file's first line when one is configured."""
        if self.token_file is None:
            return self.access_token
        try:
            text = Path(self.token_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise BrokerAuthError(f"cannot read DHAN_ACCESS_TOKEN_FILE {self.token_file}: {exc.strerror}") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise BrokerAuthError(f"DHAN_ACCESS_TOKEN_FILE {self.token_file} is empty")
        return token

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DhanCredentials:
        env = os.environ if env is None else env
        client_id = env.get("DHAN_CLIENT_ID", "").strip()
        token = env.get("DHAN_ACCESS_TOKEN", "").strip()
        token_file = env.get("DHAN_ACCESS_TOKEN_FILE", "").strip() or None
        if not client_id:
            raise ConfigError("Dhan feed needs DHAN_CLIENT_ID in the environment")
        if not token and token_file is None:
            raise ConfigError("Dhan feed needs DHAN_ACCESS_TOKEN or DHAN_ACCESS_TOKEN_FILE in the environment")
        if token_file is not None and not Path(token_file).is_file():
            raise ConfigError(f"DHAN_ACCESS_TOKEN_FILE {token_file} is not a readable file")
        return cls(client_id, token, token_file)
