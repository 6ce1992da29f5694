"""`openalgo-proxy chain`: the option chain service as its own process."""

from __future__ import annotations

import argparse

from openalgo_proxy.config import Settings


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="endpoint the chain service binds (default [chain] bus)")
    parser.add_argument("--feeds", action="append", help="bus endpoint to take legs from (repeatable)")


def cmd_chain(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.bus_curve import Role
    from openalgo_proxy.bus_security import secure_bus
    from openalgo_proxy.chain.service import ChainService
    from openalgo_proxy.runtime import run_until_signal

    cfg = settings.chain
    bind = args.bind or cfg.bus
    feeds = args.feeds or cfg.feeds
    guard = secure_bus(settings.bus, Role.SERVER, bind=[bind], connect=feeds)
    service = ChainService(bind, feeds, rate=cfg.rate, dividend_yields=cfg.dividend_yields, interval=cfg.interval)
    try:
        return run_until_signal(service.start, service.stop)
    finally:
        guard.close()
