"""Zerodha Kite Connect in the broker registry."""

from openalgo_proxy.brokers.spec import BrokerSpec
from openalgo_proxy.brokers.zerodha.settings import ZerodhaSettings

SPEC = BrokerSpec(
    name="zerodha",
    summary="Zerodha Kite Connect",
    adapter="openalgo_proxy.brokers.zerodha.adapter",
    simulator="openalgo_proxy.brokers.zerodha.simulator",
    max_connections=3,
    settings=ZerodhaSettings,
)
