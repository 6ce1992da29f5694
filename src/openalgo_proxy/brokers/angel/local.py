"""`angel-simulator`, the default feed: the production Angel adapter against an in-process simulator."""

from __future__ import annotations

from openalgo_proxy.brokers.angel.spec import SPEC
from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.local import LocalAdapter


class LocalAngelAdapter(LocalAdapter):
    def __init__(self, options: FeedOptions, name: str = "angel") -> None:
        super().__init__(SPEC, options)
        self.name = name


def create(options: FeedOptions) -> BrokerAdapter:
    return LocalAngelAdapter(options)
