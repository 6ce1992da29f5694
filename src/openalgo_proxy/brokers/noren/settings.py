"""The Noren brokers' sections (`[feed.shoonya]`, ...) and credentials (from the environment only).

The brokers document no caps: keys per subscribe message and subscriptions per connection are
options (and `<BROKER>_KEYS_PER_MESSAGE`, `<BROKER>_MAX_SUBSCRIPTIONS`, `<BROKER>_EXCHANGES`).
"""

from __future__ import annotations

from pydantic import Field

from openalgo_proxy.brokers.environment import BrokerSettings, Credential
from openalgo_proxy.brokers.noren.codec import KEYS_PER_MESSAGE
from openalgo_proxy.brokers.noren.members import MEMBERS

MAX_SUBSCRIPTIONS = 1000


class NorenSettings(BrokerSettings):
    """The user id and the day's token (`<BROKER>_ACCESS_TOKEN` or `<BROKER>_ACCESS_TOKEN_FILE`)."""

    user_id: str = Field("", description="the account's user id (default: <BROKER>_USER_ID)")
    keys_per_message: int = Field(KEYS_PER_MESSAGE, ge=1, description="instruments per subscribe message")
    max_subscriptions: int = Field(MAX_SUBSCRIPTIONS, ge=1, description="subscriptions per connection")


def _member_settings(name: str) -> type[NorenSettings]:
    prefix = MEMBERS[name].env
    options = ("exchanges", "keys_per_message", "max_subscriptions")
    namespace = {
        "__module__": __name__,
        "__doc__": NorenSettings.__doc__,
        "credentials": (
            Credential(f"{prefix}_USER_ID", key="user_id"),
            Credential(f"{prefix}_ACCESS_TOKEN", token_file=True),
        ),
        "environment": {option: f"{prefix}_{option.upper()}" for option in options},
    }
    made: type[NorenSettings] = type(f"{name.title()}Settings", (NorenSettings,), namespace)
    return made


#: each member's class, by broker name
BY_NAME = {name: _member_settings(name) for name in MEMBERS}
