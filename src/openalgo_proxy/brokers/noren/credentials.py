"""Noren credentials: a user id and a daily token, from the environment or a token file.

`<BROKER>_USER_ID` (or the section's `user_id`) and either `<BROKER>_ACCESS_TOKEN` or
`<BROKER>_ACCESS_TOKEN_FILE` (BROKER is SHOONYA, FLATTRADE, ZEBU, TRADESMART, DEFINEDGE or ALICEBLUE;
for AliceBlue the token is the session id). A token file is re-read at every connect and after a
refused login, so a daily login job can replace it without restarting the feed. The token never
appears in logs or reprs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from openalgo_proxy.brokers.environment import read_token
from openalgo_proxy.brokers.noren.members import Member
from openalgo_proxy.brokers.noren.settings import BY_NAME, NorenSettings


@dataclass(frozen=True)
class NorenCredentials:
    user_id: str
    access_token: str = field(default="", repr=False)
    token_file: str | None = None

    def token(self) -> str:
        """The current token: the token file's first line when one is configured."""
        return read_token("the access token", self.access_token, self.token_file)

    @classmethod
    def from_env(
        cls, member: Member, env: Mapping[str, str] | None = None, settings: NorenSettings | None = None
    ) -> NorenCredentials:
        found = (settings or BY_NAME[member.name].load(env)).read_credentials(member.name, env)
        token = f"{member.env}_ACCESS_TOKEN"
        return cls(found[f"{member.env}_USER_ID"], found.get(token, ""), found.get(f"{token}_FILE"))
