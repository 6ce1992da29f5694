"""Where each broker's adapter and simulator live. The CLI and the feed look names up here.

An adapter module exposes ``create(options: FeedOptions) -> BrokerAdapter``; an entry written
``module:attribute`` names an object of that module with that ``create`` (one module serving several
brokers, as the Noren family's does).
A simulator module exposes ``add_arguments(parser)`` and ``async serve(args) -> None``
(serves until cancelled) and is started by ``openalgo-proxy simulate NAME``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: the Noren family (one adapter module): `run --broker NAME` and `run --broker NAME-simulator`
NOREN_MEMBERS = ("shoonya", "flattrade", "zebu", "tradesmart", "definedge", "aliceblue")

ADAPTERS: dict[str, str] = {
    # the default: the production Angel adapter against a local Angel-protocol simulator
    "angel-simulator": "openalgo_proxy.brokers.angel.local",
    # the simulated market handed straight to the feed, with no wire protocol in between
    "simulator": "openalgo_proxy.brokers.simulated.adapter",
    "angel": "openalgo_proxy.brokers.angel.adapter",
    "zerodha": "openalgo_proxy.brokers.zerodha.adapter",
    "dhan": "openalgo_proxy.brokers.dhan.adapter",
    # the production Dhan adapter against a local Dhan-protocol simulator
    "dhan-simulator": "openalgo_proxy.brokers.dhan.local",
    "upstox": "openalgo_proxy.brokers.upstox.adapter",
    # the production Upstox adapter against a local Upstox-protocol simulator
    "upstox-simulator": "openalgo_proxy.brokers.upstox.local",
    # ticks recorded by `openalgo-proxy record`, replayed from the tick store
    "replay": "openalgo_proxy.brokers.replay.adapter",
    **{name: f"openalgo_proxy.brokers.noren.adapter:{name}" for name in NOREN_MEMBERS},
    **{f"{name}-simulator": f"openalgo_proxy.brokers.noren.local:{name}" for name in NOREN_MEMBERS},
    # chain mode: a client of an OpenAlgo-protocol proxy (--upstream), for brokers not streamed natively
    "openalgo": "openalgo_proxy.brokers.openalgo.adapter",
}

SIMULATORS: dict[str, str] = {
    "angel": "openalgo_proxy.brokers.angel.simulator",
    "zerodha": "openalgo_proxy.brokers.zerodha.simulator",
    "dhan": "openalgo_proxy.brokers.dhan.simulator",
    "upstox": "openalgo_proxy.brokers.upstox.simulator",
    "noren": "openalgo_proxy.brokers.noren.simulator",
}


def adapter_module(name: str) -> Any:
    """The object whose ``create(options)`` builds `name`'s adapter (a module, or a module's attribute)."""
    try:
        path = ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown broker {name!r}; choose from {', '.join(sorted(ADAPTERS))}") from None
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def simulator_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(SIMULATORS[name])
    except KeyError:
        raise ValueError(f"no simulator for {name!r}; choose from {', '.join(sorted(SIMULATORS))}") from None
