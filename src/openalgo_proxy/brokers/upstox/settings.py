"""Upstox's `[feed.upstox]` section and credentials (from the environment only)."""

from __future__ import annotations

from pydantic import Field

from openalgo_proxy.brokers.environment import BrokerSettings, Credential


class UpstoxSettings(BrokerSettings):
    """The day's access token (UPSTOX_ACCESS_TOKEN or UPSTOX_ACCESS_TOKEN_FILE)."""

    credentials = (Credential("UPSTOX_ACCESS_TOKEN", token_file=True),)
    environment = {"full_d30": "UPSTOX_FULL_D30"}

    full_d30: bool = Field(False, description="an Upstox Plus account: 30-level books (default: UPSTOX_FULL_D30)")
