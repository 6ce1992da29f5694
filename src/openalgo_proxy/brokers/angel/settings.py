"""Angel One's `[feed.angel]` section and credentials (from the environment only)."""

from __future__ import annotations

from pydantic import Field

from openalgo_proxy.brokers.environment import BrokerSettings, Credential


class AngelSettings(BrokerSettings):
    """Either ANGEL_PIN + ANGEL_TOTP_SECRET (a login each day) or ANGEL_JWT_TOKEN + ANGEL_FEED_TOKEN."""

    credentials = (
        Credential("ANGEL_API_KEY"),
        Credential("ANGEL_CLIENT_CODE", key="client_code"),
        *(Credential(name, required=False) for name in ("ANGEL_PIN", "ANGEL_TOTP_SECRET")),
        *(Credential(name, required=False) for name in ("ANGEL_JWT_TOKEN", "ANGEL_FEED_TOKEN")),
    )

    client_code: str = Field("", description="the account's client code (default: ANGEL_CLIENT_CODE)")
