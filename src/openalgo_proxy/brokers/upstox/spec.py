"""Upstox in the broker registry."""

from openalgo_proxy.brokers.spec import BrokerSpec
from openalgo_proxy.brokers.upstox.settings import UpstoxSettings

SPEC = BrokerSpec(
    name="upstox",
    summary="Upstox Market Data Feed V3",
    adapter="openalgo_proxy.brokers.upstox.adapter",
    simulator="openalgo_proxy.brokers.upstox.simulator",
    max_connections=1,  # one market-data connection per app and user
    settings=UpstoxSettings,
)
