"""`openalgo-proxy search QUERY`: find what can be subscribed, by symbol, name or a near spelling.

openalgo-proxy search nifty
openalgo-proxy search crude --exchange MCX
openalgo-proxy search NSE:RELAINCE --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from openalgo_proxy.client.client import DEFAULT_URL, connect
from openalgo_proxy.client.errors import ClientError, ServerError

API_KEY_ENV = "OPENALGO_PROXY_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help="symbol or name, whole or in part (EXCHANGE:QUERY limits the exchange)")
    parser.add_argument("--exchange", default=None, help="only this exchange (NSE, NSE_INDEX, NFO, MCX, CDS, ...)")
    parser.add_argument("--limit", type=int, default=20, help="most results to show (default 20, at most 50)")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"proxy WebSocket URL (default {DEFAULT_URL})")
    parser.add_argument(
        "--api-key", default=None, help=f"API key for the proxy (default: environment variable {API_KEY_ENV})"
    )


def format_results(results: list[dict[str, Any]]) -> str:
    """One aligned line per instrument: EXCHANGE:SYMBOL, name, type, tick size, lot size."""
    rows = [
        (
            f"{item.get('exchange', '')}:{item.get('symbol', '')}",
            str(item.get("name", "")),
            str(item.get("instrument_type", "")),
            f"tick {item.get('tick_size', 0):g}",
            f"lot {item.get('lot_size', 1)}",
        )
        for item in results
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


async def _search(args: argparse.Namespace) -> list[dict[str, Any]]:
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    async with connect(args.url, api_key=api_key, reconnect=False, first_connect_timeout=3.0) as feed:
        return await feed.search(args.query, exchange=args.exchange, limit=args.limit)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("openalgo_proxy.client").setLevel(logging.ERROR)  # this command's own line says it
    try:
        results = asyncio.run(_search(args))
    except ServerError as exc:
        sys.stderr.write(f"openalgo-proxy: search refused by {args.url}: {exc.code}: {exc.message}\n")
        return 1
    except ClientError as exc:
        sys.stderr.write(f"openalgo-proxy: {exc}\n")
        return 1
    if not results:
        sys.stderr.write(f"no instrument matches {args.query!r}\n")
        return 1
    sys.stdout.write(format_results(results) + "\n")
    return 0
