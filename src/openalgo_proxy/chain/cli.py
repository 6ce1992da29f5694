"""`openalgo-proxy chain`: the option chain service as its own process."""

from __future__ import annotations

import argparse

from openalgo_proxy.config import Settings


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="endpoint the chain service binds (default [chain] bus)")
    parser.add_argument("--feeds", action="append", help="bus endpoint to take legs from (repeatable)")


def cmd_chain(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.bus_service import serve
    from openalgo_proxy.chain.service import ChainService

    cfg = settings.chain
    bind = args.bind or cfg.bus
    feeds = args.feeds or cfg.feeds
    return serve(
        settings.bus,
        ChainService(bind, feeds, rate=cfg.rate, dividend_yields=cfg.dividend_yields, interval=cfg.interval),
    )
