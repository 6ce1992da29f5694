"""`openalgo-proxy watch`: a live terminal market watch.

    openalgo-proxy watch NSE:RELIANCE NSE:INFY NSE_INDEX:NIFTY [--mode depth]
    python -m openalgo_proxy.client.watch NSE:RELIANCE --url ws://127.0.0.1:8765
    openalgo-proxy watch nse:infy --url wss://proxy.example:8765 --ca private-ca.pem

Keys: arrows move the highlighted row (its depth ladder is shown), q or Ctrl-C quits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from openalgo_proxy.client.client import DEFAULT_URL
from openalgo_proxy.client.failures import tls_context
from openalgo_proxy.client.symbols import parse_instrument
from openalgo_proxy.model import Mode

if TYPE_CHECKING:
    from openalgo_proxy.client.tui import WatchApp

API_KEY_ENV = "OPENALGO_PROXY_API_KEY"
DEFAULT_INSTRUMENTS = ("NSE:RELIANCE", "NSE:INFY", "NSE:HDFCBANK", "NSE_INDEX:NIFTY", "NSE_INDEX:BANKNIFTY")


def _instrument(text: str) -> tuple[str, str]:
    try:
        return parse_instrument(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "symbols",  # not "instruments": the CLI reads args.instruments as a feed setting
        nargs="*",
        type=_instrument,
        metavar="EXCHANGE:SYMBOL",
        help=f"instruments to watch (default: {' '.join(DEFAULT_INSTRUMENTS)})",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"proxy WebSocket URL (default {DEFAULT_URL})")
    parser.add_argument(
        "--api-key", default=None, help=f"API key for the proxy (default: environment variable {API_KEY_ENV})"
    )
    parser.add_argument(
        "--mode", choices=("ltp", "quote", "depth"), default="quote", help="subscription mode (default quote)"
    )
    parser.add_argument(
        "--ca",
        default=None,
        metavar="FILE",
        help="PEM file of the CA that signed a wss:// proxy's certificate (default: the system's trust store)",
    )


class _StatusLine(logging.Handler):
    """While the full-screen app runs, log records go to its status bar instead of over the screen."""

    def __init__(self, app: WatchApp) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        self.app.note = record.getMessage()


def run(args: argparse.Namespace) -> int:
    from openalgo_proxy.client.tui import WatchApp  # textual loads only for this command

    instruments = list(args.symbols) or [parse_instrument(text) for text in DEFAULT_INSTRUMENTS]
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        ssl = tls_context(args.ca)
    except ValueError as exc:
        sys.stderr.write(f"openalgo-proxy watch: {exc}\n")
        return 2
    app = WatchApp(instruments, args.url, api_key, Mode.parse(args.mode), ssl=ssl)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [_StatusLine(app)]
    try:
        app.run()
    finally:
        root.handlers[:] = saved
    return app.return_code or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openalgo-proxy watch", description="Live terminal market watch.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
