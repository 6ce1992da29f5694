"""Dhan in the broker registry."""

from openalgo_proxy.brokers.dhan.settings import DhanSettings
from openalgo_proxy.brokers.spec import BrokerSpec

SPEC = BrokerSpec(
    name="dhan",
    summary="Dhan Live Market Feed",
    adapter="openalgo_proxy.brokers.dhan.adapter",
    simulator="openalgo_proxy.brokers.dhan.simulator",
    max_connections=5,
    settings=DhanSettings,
)
