"""mStock (Mirae Asset) Type B in the broker registry."""

from openalgo_proxy.brokers.mstock.settings import MStockSettings
from openalgo_proxy.brokers.spec import BrokerSpec

SPEC = BrokerSpec(
    name="mstock",
    summary="mStock Type B",
    adapter="openalgo_proxy.brokers.mstock.adapter",
    simulator="openalgo_proxy.brokers.mstock.simulator",
    max_connections=3,
    settings=MStockSettings,
)
