"""Angel One in the broker registry."""

from openalgo_proxy.brokers.angel.settings import AngelSettings
from openalgo_proxy.brokers.spec import BrokerSpec

SPEC = BrokerSpec(
    name="angel",
    summary="Angel One SmartAPI",
    adapter="openalgo_proxy.brokers.angel.adapter",
    simulator="openalgo_proxy.brokers.angel.simulator",
    max_connections=3,
    settings=AngelSettings,
)
