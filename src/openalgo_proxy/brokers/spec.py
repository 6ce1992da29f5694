"""`BrokerSpec`: how a broker folder tells the registry what it offers; modules load on use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from openalgo_proxy.brokers.environment import BrokerSettings


@dataclass(frozen=True, slots=True)
class BrokerSpec:
    """What the rest of the system needs to know about one broker; modules are loaded on use."""

    name: str
    summary: str  # one line for CLI help
    adapter: str  # module with `create(options) -> BrokerAdapter` (credentials from the environment)
    simulator: str  # module with `add_arguments`, `serve`, and `adapter_for(simulator, options)`
    settings: type[BrokerSettings] | None = None  # validates its `[feed.NAME]` section; None = it has none

    def adapter_module(self) -> ModuleType:
        return importlib.import_module(self.adapter)

    def simulator_module(self) -> ModuleType:
        return importlib.import_module(self.simulator)
