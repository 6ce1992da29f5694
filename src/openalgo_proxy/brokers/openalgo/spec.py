"""Chain mode: a client of an upstream OpenAlgo-protocol proxy, for brokers not streamed natively."""

from openalgo_proxy.brokers.spec import BrokerSpec

SPEC = BrokerSpec(
    name="openalgo",
    summary="chain mode: an upstream OpenAlgo-protocol proxy",
    adapter="openalgo_proxy.brokers.openalgo.adapter",
)
