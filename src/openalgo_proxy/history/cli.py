"""`openalgo-proxy record` and `openalgo-proxy history`: argument wiring and terminal output."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from typing import Any

from openalgo_proxy.config import RecordSettings, Settings
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.model import Mode


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="tick store folder (default [record] dir)")
    parser.add_argument("--symbols", help="comma-separated EXCHANGE:SYMBOL to record")
    parser.add_argument("--exchanges", help="comma-separated exchanges to record whole")
    parser.add_argument("--subscribed", action="store_true", help="record whatever clients subscribe")
    parser.add_argument("--mode", type=int, choices=[1, 2, 3], help="mode of --symbols/--exchanges (default 2)")
    parser.add_argument("--bus", action="append", help="bus endpoint to subscribe on (repeatable)")
    parser.add_argument("--flush-interval", type=float, help="seconds between file writes (default 5)")
    parser.add_argument("--retention-days", type=int, help="delete dates older than this (0 = keep all)")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    parser.add_argument("--usage", action="store_true", help="print the store's disk use per date and exit")


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instrument", help="EXCHANGE:SYMBOL, e.g. NSE:RELIANCE")
    parser.add_argument("--dir", help="tick store folder (default [record] dir)")
    parser.add_argument("--from", dest="start", help="first IST date (YYYY-MM-DD) or ISO date-time (default today)")
    parser.add_argument("--to", dest="end", help="last IST date (inclusive) or ISO date-time (default --from)")
    parser.add_argument("--interval", default="1m", help="1m 3m 5m 15m 30m 1h 1d, or 'ticks' (default 1m)")
    parser.add_argument("--format", choices=["table", "csv"], default="table")
    parser.add_argument("--limit", type=int, default=1000, help="rows at most (default 1000)")


def record_overrides(args: argparse.Namespace) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if args.dir:
        record["dir"] = args.dir
    if args.symbols:
        record["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if args.exchanges:
        record["exchanges"] = [s.strip() for s in args.exchanges.split(",") if s.strip()]
    if args.subscribed:
        record["subscribed"] = True
    for flag in ("mode", "bus", "flush_interval", "retention_days", "metrics_port"):
        if getattr(args, flag) is not None:
            record[flag] = getattr(args, flag)
    return record


def universe_of(cfg: RecordSettings) -> Any:
    from openalgo_proxy.history.recorder import Universe

    pairs = []
    for item in cfg.symbols:
        exchange, _, symbol = item.partition(":")
        pairs.append((exchange, symbol))
    return Universe(tuple(pairs), tuple(cfg.exchanges), cfg.subscribed, Mode(cfg.mode))


def cmd_record(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.bus_curve import Role
    from openalgo_proxy.bus_security import secure_bus
    from openalgo_proxy.history.recorder import Recorder
    from openalgo_proxy.history.store import disk_usage
    from openalgo_proxy.runtime import run_until_signal

    cfg = settings.record
    if args.usage:
        usage = disk_usage(cfg.dir)
        for date, size in usage.items():
            sys.stdout.write(f"{date}\t{size}\n")
        sys.stdout.write(f"total\t{sum(usage.values())}\t{cfg.dir}\n")
        return 0
    universe = universe_of(cfg)
    if universe.empty:
        raise ConfigError("nothing to record: give [record] symbols, exchanges or subscribed (or --symbols ...)")
    guard = secure_bus(settings.bus, Role.CLIENT, connect=cfg.bus)
    recorder = Recorder(
        cfg.dir,
        cfg.bus,
        universe,
        flush_interval=cfg.flush_interval,
        batch_rows=cfg.batch_rows,
        retention_days=cfg.retention_days,
    )
    metrics = None
    if cfg.metrics_port:
        from openalgo_proxy.history.metrics import RecorderMetricsServer

        metrics = RecorderMetricsServer(cfg.metrics_host, cfg.metrics_port, recorder.stats)

    async def start() -> None:
        if metrics is not None:
            await metrics.start()
        await recorder.start()

    async def stop() -> None:
        await recorder.stop()
        if metrics is not None:
            await metrics.stop()

    try:
        return run_until_signal(start, stop)
    finally:
        guard.close()


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.history.query import candles_between, ticks_between
    from openalgo_proxy.history.timerange import parse_range

    exchange, _, symbol = args.instrument.strip().upper().partition(":")
    if not exchange or not symbol:
        raise ConfigError(f"give the instrument as EXCHANGE:SYMBOL, not {args.instrument!r}")
    start, end = parse_range(args.start, args.end, int(time.time() * 1000))
    root = args.dir or settings.record.dir
    if args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    if args.interval == "ticks":
        rows = ticks_between(root, exchange, symbol, start, end, limit=args.limit)
    else:
        rows = candles_between(root, exchange, symbol, args.interval, start, end, limit=args.limit)
    if args.format == "csv":
        writer = csv.writer(sys.stdout)
        if rows:
            writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow(row.values())
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{exchange}:{symbol} {args.interval} ({len(rows)} rows)")
    for key in rows[0].keys() if rows else ("time",):
        table.add_column(key, justify="left" if key in ("time", "symbol") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
    return 0


def add_candles_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="endpoint the candle service binds (default [candles] bus)")
    parser.add_argument("--feeds", action="append", help="bus endpoint to take ticks from (repeatable)")


def cmd_candles(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.bus_service import serve
    from openalgo_proxy.history.candle_service import CandleService

    cfg = settings.candles
    bind = args.bind or cfg.bus
    feeds = args.feeds or cfg.feeds
    return serve(
        settings.bus,
        CandleService(bind, feeds, store_dir=settings.record.dir, history=cfg.history, conflate=cfg.conflate),
    )
