"""Dhan's `[feed.dhan]` section and credentials (from the environment only)."""

from __future__ import annotations

from pydantic import Field

from openalgo_proxy.brokers.environment import BrokerSettings, Credential


class DhanSettings(BrokerSettings):
    """The client id and the day's access token (DHAN_ACCESS_TOKEN or DHAN_ACCESS_TOKEN_FILE)."""

    credentials = (Credential("DHAN_CLIENT_ID", key="client_id"), Credential("DHAN_ACCESS_TOKEN", token_file=True))

    client_id: str = Field("", description="the account's Dhan client id (default: DHAN_CLIENT_ID)")
