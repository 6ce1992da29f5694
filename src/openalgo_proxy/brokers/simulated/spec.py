"""The simulated market handed straight to the feed, with no wire protocol between (`--broker simulator`)."""

from openalgo_proxy.brokers.spec import BrokerSpec

SPEC = BrokerSpec(
    name="simulator",
    summary="simulated market",
    adapter="openalgo_proxy.brokers.simulated.adapter",
)
