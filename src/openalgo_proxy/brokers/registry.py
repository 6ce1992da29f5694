"""Every broker this build streams, by name. The CLI, the config and the contract tests read it here.

A broker is a folder `brokers/<name>/` whose `spec.py` defines `SPEC = BrokerSpec(...)` (brokers/spec.py); adding a
broker is adding its name to `BROKERS`. Besides each broker `NAME`, the registry offers:
- `NAME-simulator`: the production adapter of NAME against its own simulator started in-process
  (no account needed; `angel-simulator` is the default feed);
- `simulator`: the simulated market handed straight to the feed, with no wire protocol between.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.spec import BrokerSpec

#: the broker folders, in the order the CLI lists them
BROKERS: tuple[str, ...] = ("angel", "zerodha", "dhan", "mstock")
DEFAULT = "angel-simulator"
SIMULATED_MARKET = "simulator"
LOCAL_SUFFIX = "-simulator"


def names() -> list[str]:
    """Every name `--broker` (and `feed.broker`) accepts."""
    return list(dict.fromkeys([DEFAULT, SIMULATED_MARKET, *BROKERS, *(f"{b}{LOCAL_SUFFIX}" for b in BROKERS)]))


def spec(name: str) -> BrokerSpec:
    if name not in BROKERS:
        raise ValueError(f"unknown broker {name!r}; choose from {', '.join(names())}")
    found: BrokerSpec = importlib.import_module(f"openalgo_proxy.brokers.{name}.spec").SPEC
    return found


def help_text() -> str:
    """The `--broker` help: every accepted name with what it is."""
    lines = [f"{DEFAULT} (default: the Angel adapter against a local Angel simulator)", f"{SIMULATED_MARKET}"]
    lines += [f"{b} ({spec(b).summary})" for b in BROKERS]
    lines += [f"{b}{LOCAL_SUFFIX}" for b in BROKERS if f"{b}{LOCAL_SUFFIX}" != DEFAULT]
    return " | ".join(lines)


def describe(name: str) -> str:
    """What a feed of `name` streams, for the ready line."""
    if name == SIMULATED_MARKET:
        return "simulated market"
    if name.endswith(LOCAL_SUFFIX):
        return f"simulated market via the {spec(name.removesuffix(LOCAL_SUFFIX)).summary} adapter"
    return name


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
    made: Callable[[FeedOptions], BrokerAdapter] = spec(name).adapter_module().create
    return made


def simulator_module(name: str) -> ModuleType:
    try:
        return spec(name).simulator_module()
    except ValueError:
        raise ValueError(f"no simulator for {name!r}; choose from {', '.join(BROKERS)}") from None
