"""Ticks recorded by `openalgo-proxy record`, replayed from the tick store (`--broker replay`)."""

from openalgo_proxy.brokers.spec import BrokerSpec

SPEC = BrokerSpec(name="replay", summary="recorded ticks", adapter="openalgo_proxy.brokers.replay.adapter")
