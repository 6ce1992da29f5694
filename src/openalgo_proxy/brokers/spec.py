"""`BrokerSpec`: how a broker folder tells the registry what it offers; modules load on use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openalgo_proxy.brokers.environment import BrokerSettings


@dataclass(frozen=True, slots=True)
class BrokerSpec:
    """What the rest of the system needs to know about one broker; modules are loaded on use."""

    name: str
    summary: str  # one line for CLI help
    adapter: str  # module with `create(options) -> BrokerAdapter` (credentials from the environment)
    simulator: str  # module with `add_arguments`, `serve`, and `adapter_for(simulator, options)`
    settings: str = ""  # `module:Class`: its `[feed.NAME]` section, a BrokerSettings ("" = the common options)

    def adapter_module(self) -> ModuleType:
        return importlib.import_module(self.adapter)

    def simulator_module(self) -> ModuleType:
        return importlib.import_module(self.simulator)

    def settings_class(self) -> type[BrokerSettings]:
        return load_settings_class(self.settings)


def load_settings_class(path: str) -> type[BrokerSettings]:
    """The class a `module:Class` path names; "" is the options every broker has."""
    from openalgo_proxy.brokers.environment import BrokerSettings

    if not path:
        return BrokerSettings
    module, _, name = path.partition(":")
    found: type[BrokerSettings] = getattr(importlib.import_module(module), name)
    return found
