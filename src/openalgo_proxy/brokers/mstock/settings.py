"""mStock's `[feed.mstock]` section and credentials (from the environment only)."""

from __future__ import annotations

from openalgo_proxy.brokers.environment import BrokerSettings, Credential


class MStockSettings(BrokerSettings):
    """MSTOCK_API_KEY and the day's access token (MSTOCK_ACCESS_TOKEN or MSTOCK_ACCESS_TOKEN_FILE)."""

    credentials = (Credential("MSTOCK_API_KEY"), Credential("MSTOCK_ACCESS_TOKEN", token_file=True))
