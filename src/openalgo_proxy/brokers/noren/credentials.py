"""Noren credentials: a user id and a daily token, from the environment or a token file.

`<BROKER>_USER_ID` and either `<BROKER>_ACCESS_TOKEN` or `<BROKER>_ACCESS_TOKEN_FILE` (BROKER is
SHOONYA, FLATTRADE, ZEBU, TRADESMART, DEFINEDGE or ALICEBLUE; for AliceBlue the token is the session
id). A token file is re-read at every connect and after a refused login, so a daily login job can
replace it without restarting the feed. The token never appears in logs or reprs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from openalgo_proxy.brokers.noren.members import Member
from openalgo_proxy.errors import BrokerAuthError, ConfigError


@dataclass(frozen=True)
class NorenCredentials:
    user_id: str
    access_token: str = field(default="", repr=False)
    token_file: str | None = None

    def token(self) -> str:
        """The current token: the token file's first line when one is configured."""
        if self.token_file is None:
            return self.access_token
        try:
            text = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BrokerAuthError(f"cannot read the token file {self.token_file}: {exc.strerror}") from None
        token = text.splitlines()[0].strip() if text else ""
        if not token:
            raise BrokerAuthError(f"the token file {self.token_file} is empty")
        return token

    @classmethod
    def from_env(cls, member: Member, env: Mapping[str, str] | None = None) -> NorenCredentials:
        env = os.environ if env is None else env
        prefix = member.env
        user_id = env.get(f"{prefix}_USER_ID", "").strip()
        token = env.get(f"{prefix}_ACCESS_TOKEN", "").strip()
        token_file = env.get(f"{prefix}_ACCESS_TOKEN_FILE", "").strip() or None
        if not user_id:
            raise ConfigError(f"the {member.name} feed needs {prefix}_USER_ID in the environment")
        if not token and token_file is None:
            raise ConfigError(f"the {member.name} feed needs {prefix}_ACCESS_TOKEN or {prefix}_ACCESS_TOKEN_FILE")
        if token_file is not None and not Path(token_file).is_file():
            raise ConfigError(f"{prefix}_ACCESS_TOKEN_FILE {token_file} is not a readable file")
        return cls(user_id, token, token_file)
