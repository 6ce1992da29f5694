"""`BrokerSpec`: how a broker folder tells the registry what it offers; modules load on use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from openalgo_proxy.brokers.environment import BrokerSettings


def load(entry: str) -> Any:
    """The object an entry names: `package.module`, or `package.module:attribute` for one of its objects."""
    module_name, _, attribute = entry.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerSpec:
    """What the rest of the system needs to know about one `--broker` name; modules are loaded on use.

    `adapter` and `simulator` are entries for `load()`: a module, or `module:attribute` when one module
    serves several brokers (the Noren family).
    """

    name: str
    summary: str  # one line for CLI help and the ready line
    adapter: str  # has `create(options) -> BrokerAdapter` (credentials from the environment)
    #: has `add_arguments(parser)`, `async serve(args)` (`simulate NAME`), `simulator_for(options)` and
    #: `adapter_for(simulator, options)` (`run --broker NAME-simulator`, the contract tests); "" = none
    simulator: str = ""
    #: market-data connections the broker allows one account (the pool's cap, proven by the contract tests)
    max_connections: int = 1
    #: brokers sharing one adapter and one simulator: `simulate FAMILY` also starts that simulator
    family: str = ""
    #: validates its `[feed.NAME]` section (a BrokerSettings in its folder); None = the broker has no options
    settings: type[BrokerSettings] | None = None

    def adapter_module(self) -> Any:
        return load(self.adapter)

    def simulator_module(self) -> Any:
        if not self.simulator:
            raise ValueError(f"{self.name} has no simulator")
        return load(self.simulator)
