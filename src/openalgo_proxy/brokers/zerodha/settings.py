"""Zerodha Kite's `[feed.zerodha]` section and credentials (from the environment only)."""

from __future__ import annotations

from openalgo_proxy.brokers.environment import BrokerSettings, Credential


class ZerodhaSettings(BrokerSettings):
    """KITE_API_KEY and the day's access token (KITE_ACCESS_TOKEN, or a file named by KITE_ACCESS_TOKEN_FILE)."""

    credentials = (Credential("KITE_API_KEY"), Credential("KITE_ACCESS_TOKEN", token_file=True))
    environment = {"exchanges": "KITE_EXCHANGES"}
