"""Every `--broker` name this build accepts, each described by a `BrokerSpec` (brokers/spec.py).

A broker is a folder `brokers/<folder>/` whose `spec.py` defines `SPEC = BrokerSpec(...)`, or
`SPECS = (...)` when one folder serves a family of brokers (the Noren members); adding a broker is
its folder plus its folder's name in `FOLDERS`. The CLI (`--broker` help, `simulate NAME`), the
config's broker-name check, the ready line and the adapter contract tests all read the specs here.
Besides each spec's `NAME`, every broker with a simulator also offers `NAME-simulator`: its
production adapter against its own simulator started in-process (no account needed;
`angel-simulator` is the default feed).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.environment import BrokerSettings
from openalgo_proxy.brokers.spec import BrokerSpec

#: the folders whose spec.py describes `--broker` names, in the order the CLI lists them
FOLDERS: tuple[str, ...] = ("angel", "zerodha", "dhan", "mstock", "upstox", "noren", "simulated", "replay", "openalgo")
DEFAULT = "angel-simulator"
LOCAL_SUFFIX = "-simulator"


@functools.cache
def specs() -> dict[str, BrokerSpec]:
    """Every registered spec by name, in `FOLDERS` order."""
    found: dict[str, BrokerSpec] = {}
    for folder in FOLDERS:
        module = importlib.import_module(f"openalgo_proxy.brokers.{folder}.spec")
        for described in getattr(module, "SPECS", None) or (module.SPEC,):
            found[described.name] = described
    return found


def simulated() -> list[BrokerSpec]:
    """The brokers with a simulator: each has `NAME-simulator` and runs the adapter contract tests."""
    return [s for s in specs().values() if s.simulator]


def names() -> list[str]:
    """Every name `--broker` (and `feed.broker`) accepts."""
    return list(dict.fromkeys([DEFAULT, *specs(), *(f"{s.name}{LOCAL_SUFFIX}" for s in simulated())]))


def simulator_names() -> list[str]:
    """Every name `openalgo-proxy simulate NAME` accepts: each broker with a simulator, and each family."""
    return list(dict.fromkeys([*(s.name for s in simulated()), *(s.family for s in simulated() if s.family)]))


def simulator_help(name: str) -> str:
    """One line for `simulate NAME --help`: a broker's summary, or the members of a family."""
    if name in specs():
        return f"{spec(name).summary} simulator"
    members = ", ".join(s.name for s in simulated() if s.family == name)
    return f"{name} simulator for {members} (--dialect picks one)"


def spec(name: str) -> BrokerSpec:
    """The spec of a broker name (not `NAME-simulator`); ValueError for an unknown one."""
    try:
        return specs()[name]
    except KeyError:
        raise ValueError(f"unknown broker {name!r}; choose from {', '.join(names())}") from None


def settings_classes() -> dict[str, type[BrokerSettings]]:
    """Every broker with a `[feed.NAME]` section, and the class that validates it."""
    return {name: described.settings for name, described in specs().items() if described.settings is not None}


def help_text() -> str:
    """The `--broker` help: every accepted name with what it is."""
    lines = [f"{DEFAULT} (default: the {spec('angel').summary} adapter against a local simulator)"]
    lines += [f"{s.name} ({s.summary})" for s in specs().values()]
    lines += [f"{s.name}{LOCAL_SUFFIX}" for s in simulated() if f"{s.name}{LOCAL_SUFFIX}" != DEFAULT]
    return " | ".join(lines)


def describe(name: str) -> str:
    """What a feed of `name` streams, for the ready line."""
    base = name.removesuffix(LOCAL_SUFFIX)
    if name != base and base in specs():
        return f"simulated market via the {spec(base).summary} adapter"
    return spec(name).summary if name in specs() else name


def creator(name: str) -> Callable[[FeedOptions], BrokerAdapter]:
    """`create(options)` for a `--broker` name; ValueError for an unknown one."""
    base = name.removesuffix(LOCAL_SUFFIX)
    if name != base and base in specs() and spec(base).simulator:
        from openalgo_proxy.brokers.local import LocalAdapter

        local = spec(base)
        return lambda options: LocalAdapter(local, options)
    made: Callable[[FeedOptions], BrokerAdapter] = spec(name).adapter_module().create
    return made


def simulator_module(name: str) -> Any:
    """What `openalgo-proxy simulate NAME` starts (`add_arguments`, `serve`); ValueError for an unknown name."""
    for described in simulated():
        if name in (described.name, described.family):
            return described.simulator_module()
    raise ValueError(f"no simulator for {name!r}; choose from {', '.join(simulator_names())}")
