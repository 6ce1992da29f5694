"""The six Noren brokers in the broker registry: one adapter module and one simulator serve them all."""

from openalgo_proxy.brokers.noren.members import MEMBERS
from openalgo_proxy.brokers.noren.settings import BY_NAME
from openalgo_proxy.brokers.spec import BrokerSpec

SPECS = tuple(
    BrokerSpec(
        name=member.name,
        summary=f"{member.title} Noren API",
        adapter=f"openalgo_proxy.brokers.noren.adapter:{member.name}",
        simulator=f"openalgo_proxy.brokers.noren.simulator:{member.name}",
        max_connections=3,  # undocumented by the brokers: 1 unless --max-connections asks for up to 3
        family="noren",
        settings=BY_NAME[member.name],
    )
    for member in MEMBERS.values()
)
