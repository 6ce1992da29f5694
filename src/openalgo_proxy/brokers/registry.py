"""Every broker this build streams, by name. The CLI, the config and the contract tests read it here.

A broker is a folder `brokers/<name>/` whose `spec.py` defines `SPEC = BrokerSpec(...)` (brokers/spec.py); adding a
broker is adding its name to `BROKERS`. Besides each broker `NAME`, the registry offers:
- `NAME-simulator`: the production adapter of NAME against its own simulator started in-process
  (no account needed; `angel-simulator` is the default feed);
- `simulator`: the simulated market handed straight to the feed, with no wire protocol between.

Brokers not (yet) described by a `spec.py` are listed in `ADAPTERS` by where their adapter lives: an
adapter module exposes ``create(options: FeedOptions) -> BrokerAdapter``; an entry written
``module:attribute`` names an object of that module with that ``create`` (one module serving several
brokers, as the Noren family's does). Their simulators are in `SIMULATORS`: a simulator module exposes
``add_arguments(parser)`` and ``async serve(args) -> None`` (serves until cancelled) and is started by
``openalgo-proxy simulate NAME``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.environment import BrokerSettings
from openalgo_proxy.brokers.spec import BrokerSpec

#: the broker folders with a `spec.py`, in the order the CLI lists them
BROKERS: tuple[str, ...] = ("angel", "zerodha", "dhan", "mstock")
DEFAULT = "angel-simulator"
SIMULATED_MARKET = "simulator"
LOCAL_SUFFIX = "-simulator"

#: the Noren family (one adapter module): `run --broker NAME` and `run --broker NAME-simulator`
NOREN_MEMBERS = ("shoonya", "flattrade", "zebu", "tradesmart", "definedge", "aliceblue")

#: the other `--broker` names, by where their adapter lives
ADAPTERS: dict[str, str] = {
    "upstox": "openalgo_proxy.brokers.upstox.adapter",
    # the production Upstox adapter against a local Upstox-protocol simulator
    "upstox-simulator": "openalgo_proxy.brokers.upstox.local",
    **{name: f"openalgo_proxy.brokers.noren.adapter:{name}" for name in NOREN_MEMBERS},
    **{f"{name}{LOCAL_SUFFIX}": f"openalgo_proxy.brokers.noren.local:{name}" for name in NOREN_MEMBERS},
    # ticks recorded by `openalgo-proxy record`, replayed from the tick store
    "replay": "openalgo_proxy.brokers.replay.adapter",
    # chain mode: a client of an OpenAlgo-protocol proxy (--upstream), for brokers not streamed natively
    "openalgo": "openalgo_proxy.brokers.openalgo.adapter",
}

#: what an `ADAPTERS` broker is, for the `--broker` help and the ready line
NOTES: dict[str, str] = {
    "upstox": "Upstox Market Data Feed V3",
    **{name: "Noren" for name in NOREN_MEMBERS},
    "replay": "recorded ticks",
    "openalgo": "chain mode: an upstream OpenAlgo-protocol proxy",
}

#: the simulators of the brokers not in `BROKERS` (`openalgo-proxy simulate NAME`)
SIMULATORS: dict[str, str] = {
    "upstox": "openalgo_proxy.brokers.upstox.simulator",
    "noren": "openalgo_proxy.brokers.noren.simulator",
}


#: modules whose `BY_NAME` maps the brokers not in `BROKERS` to their section class (`BrokerSpec.settings`)
SETTINGS = ("openalgo_proxy.brokers.upstox.settings", "openalgo_proxy.brokers.noren.settings")


def names() -> list[str]:
    """Every name `--broker` (and `feed.broker`) accepts."""
    locals_ = (f"{b}{LOCAL_SUFFIX}" for b in BROKERS)
    return list(dict.fromkeys([DEFAULT, SIMULATED_MARKET, *BROKERS, *locals_, *ADAPTERS]))


def simulator_names() -> list[str]:
    """Every name `openalgo-proxy simulate NAME` accepts."""
    return [*BROKERS, *SIMULATORS]


def spec(name: str) -> BrokerSpec:
    if name not in BROKERS:
        raise ValueError(f"unknown broker {name!r}; choose from {', '.join(names())}")
    found: BrokerSpec = importlib.import_module(f"openalgo_proxy.brokers.{name}.spec").SPEC
    return found


def settings_classes() -> dict[str, type[BrokerSettings]]:
    """Every broker with a `[feed.NAME]` section, and the class that validates it."""
    found = {name: cls for name in BROKERS if (cls := spec(name).settings) is not None}
    for module in SETTINGS:
        found |= importlib.import_module(module).BY_NAME
    return found


def help_text() -> str:
    """The `--broker` help: every accepted name with what it is."""
    lines = [f"{DEFAULT} (default: the Angel adapter against a local Angel simulator)", f"{SIMULATED_MARKET}"]
    lines += [f"{b} ({spec(b).summary})" for b in BROKERS]
    lines += [f"{b}{LOCAL_SUFFIX}" for b in BROKERS if f"{b}{LOCAL_SUFFIX}" != DEFAULT]
    lines += [f"{name} ({NOTES[name]})" if name in NOTES else name for name in ADAPTERS]
    return " | ".join(lines)


def describe(name: str) -> str:
    """What a feed of `name` streams, for the ready line."""
    if name == SIMULATED_MARKET:
        return "simulated market"
    base = name.removesuffix(LOCAL_SUFFIX)
    if name.endswith(LOCAL_SUFFIX) and base in BROKERS:
        return f"simulated market via the {spec(base).summary} adapter"
    if name.endswith(LOCAL_SUFFIX) and name in ADAPTERS:
        return f"simulated market via the {NOTES.get(base, base)} adapter"
    return name


@dataclass(frozen=True, slots=True)
class _Creator:
    """An object with `create(options)`, for a broker whose adapter is not one module's attribute."""

    create: Callable[[FeedOptions], BrokerAdapter]


def creator(name: str) -> Callable[[FeedOptions], BrokerAdapter]:
    """`create(options)` for a `--broker` name; ValueError for an unknown one."""
    if name == SIMULATED_MARKET:
        module = importlib.import_module("openalgo_proxy.brokers.simulated.adapter")
        create: Callable[[FeedOptions], BrokerAdapter] = module.create
        return create
    if name.endswith(LOCAL_SUFFIX) and name.removesuffix(LOCAL_SUFFIX) in BROKERS:
        from openalgo_proxy.brokers.local import LocalAdapter

        local = spec(name.removesuffix(LOCAL_SUFFIX))
        return lambda options: LocalAdapter(local, options)
    made: Callable[[FeedOptions], BrokerAdapter]
    if name in ADAPTERS:
        made = adapter_module(name).create
        return made
    made = spec(name).adapter_module().create
    return made


def adapter_module(name: str) -> Any:
    """The object whose ``create(options)`` builds `name`'s adapter (a module, or a module's attribute)."""
    if name in ADAPTERS:
        module_name, _, attribute = ADAPTERS[name].partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module
    return _Creator(creator(name))


def simulator_module(name: str) -> ModuleType:
    """The simulator `openalgo-proxy simulate NAME` starts; ValueError for an unknown one."""
    if name in SIMULATORS:
        return importlib.import_module(SIMULATORS[name])
    try:
        return spec(name).simulator_module()
    except ValueError:
        raise ValueError(f"no simulator for {name!r}; choose from {', '.join(simulator_names())}") from None
