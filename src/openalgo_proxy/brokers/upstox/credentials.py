"""Upstox credentials: the daily access token, from the environment or a token file.

`UPSTOX_ACCESS_TOKEN`, or `UPSTOX_ACCESS_TOKEN_FILE` (a file whose first line is the token). Upstox
tokens stay valid until 03:30 IST the next day; a token file is re-read at every connect, so after
the old token is refused (HTTP 401 at the next handshake) the feed picks up the new day's token
without a restart. `UPSTOX_FULL_D30=1` declares an Upstox Plus account, which may stream 30-level
books (`full_d30`). The token never appears in logs or reprs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from openalgo_proxy.errors import BrokerAuthError, ConfigError

TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class UpstoxCredentials:
    access_token: str = field(default="", repr=False)
    token_file: str | None = None
    full_d30: bool = False  # an Upstox Plus account: 30-level books

    def token(self) -> str:
        """The current access token: the token file's first line when one is configured."""
        if self.token_file is None:
            return self.access_token
        try:
            text = Path(self.token_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise BrokerAuthError(f"cannot read UPSTOX_ACCESS_TOKEN_FILE {self.token_file}: {exc.strerror}") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise BrokerAuthError(f"UPSTOX_ACCESS_TOKEN_FILE {self.token_file} is empty")
        return token

    def authorization(self) -> dict[str, str]:
        """The handshake headers: the bearer token."""
        return {"Authorization": f"Bearer {self.token()}", "Accept": "*/*"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UpstoxCredentials:
        env = os.environ if env is None else env
        token = env.get("UPSTOX_ACCESS_TOKEN", "").strip()
        token_file = env.get("UPSTOX_ACCESS_TOKEN_FILE", "").strip() or None
        if not token and token_file is None:
            raise ConfigError("Upstox feed needs UPSTOX_ACCESS_TOKEN or UPSTOX_ACCESS_TOKEN_FILE in the environment")
        if token_file is not None and not Path(token_file).is_file():
            raise ConfigError(f"UPSTOX_ACCESS_TOKEN_FILE {token_file} is not a readable file")
        full_d30 = env.get("UPSTOX_FULL_D30", "").strip().lower() in TRUE
        return cls(token, token_file, full_d30)
