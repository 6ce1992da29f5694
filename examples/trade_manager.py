"""Trade-management example: positions file in, live P&L out, stop-loss / target alerts out.

    make run                                                              # one terminal
    .venv/bin/python examples/trade_manager.py examples/positions.csv     # another

positions.csv columns: instrument (EXCHANGE:SYMBOL), quantity (negative = short), average_price,
stop_loss, target (0 = none). Every --interval seconds it prints each position's LTP and P&L and
the total; when the LTP reaches a stop-loss or a target it prints an ALERT line once per position
and appends it as a JSON line to --alerts (if given). Uses the thread-friendly client
(`openalgo_proxy.client.ClientThread`): ticks arrive on a callback in the client's thread while the
main thread reports.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from openalgo_proxy.client import ClientError, ClientThread, Tick, tls_context


@dataclass
class Position:
    instrument: str
    quantity: int
    average_price: float
    stop_loss: float = 0.0
    target: float = 0.0
    ltp: float = 0.0
    alerted: str = ""

    @property
    def pnl(self) -> float:
        return (self.ltp - self.average_price) * self.quantity if self.ltp else 0.0

    def check(self) -> str | None:
        """STOP_LOSS or TARGET the first time the LTP reaches one, else None."""
        if self.alerted or not self.ltp:
            return None
        long = self.quantity > 0
        if self.stop_loss and (self.ltp <= self.stop_loss if long else self.ltp >= self.stop_loss):
            self.alerted = "STOP_LOSS"
        elif self.target and (self.ltp >= self.target if long else self.ltp <= self.target):
            self.alerted = "TARGET"
        return self.alerted or None


def load_positions(path: Path) -> list[Position]:
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("instrument", "").strip()]
    return [
        Position(
            instrument=row["instrument"].strip().upper(),
            quantity=int(row["quantity"]),
            average_price=float(row["average_price"]),
            stop_loss=float(row.get("stop_loss") or 0),
            target=float(row.get("target") or 0),
        )
        for row in rows
    ]


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Manager:
    """Applies ticks to positions (client thread) and reports them (main thread) under one lock."""

    def __init__(self, positions: list[Position], alerts_path: Path | None) -> None:
        self.positions = {position.instrument: position for position in positions}
        self.alerts_path = alerts_path
        self.lock = threading.Lock()
        self.ticks = 0
        self.alerts = 0

    def on_tick(self, tick: Tick) -> None:
        with self.lock:
            position = self.positions.get(tick.name)
            if position is None:
                return
            self.ticks += 1
            position.ltp = tick.ltp
            kind = position.check()
            if kind is None:
                return
            self.alerts += 1
            alert = {
                "alert": kind,
                "instrument": position.instrument,
                "quantity": position.quantity,
                "ltp": position.ltp,
                "level": position.stop_loss if kind == "STOP_LOSS" else position.target,
                "pnl": round(position.pnl, 2),
                "at": tick.timestamp,
            }
        emit(
            f"ALERT {kind} {alert['instrument']} ltp {alert['ltp']:.2f}"
            f" (level {alert['level']:.2f}) P&L {alert['pnl']:+,.2f}"
        )
        if self.alerts_path is not None:
            with self.alerts_path.open("a") as handle:
                handle.write(json.dumps(alert) + "\n")

    def report(self) -> str:
        with self.lock:
            lines = [f"{'instrument':<24}{'qty':>7}{'avg':>11}{'ltp':>11}{'P&L':>13}  status"]
            total = 0.0
            for p in self.positions.values():
                total += p.pnl
                ltp = f"{p.ltp:.2f}" if p.ltp else "-"
                status = p.alerted or "open"
                lines.append(
                    f"{p.instrument:<24}{p.quantity:>7}{p.average_price:>11.2f}{ltp:>11}{p.pnl:>+13,.2f}  {status}"
                )
            lines.append(f"{'total P&L':<53}{total:>+13,.2f}")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Live P&L and stop-loss / target alerts for a positions file.")
    parser.add_argument("positions", type=Path, nargs="?", default=Path(__file__).with_name("positions.csv"))
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--api-key", default=os.environ.get("OPENALGO_PROXY_API_KEY"))
    parser.add_argument("--ca", default=None, metavar="FILE", help="PEM of a private CA that signed a wss:// proxy")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the proxy")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between P&L reports (default 2)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--alerts", type=Path, default=None, help="append alerts here as JSON lines")
    args = parser.parse_args(argv)

    positions = load_positions(args.positions)
    if not positions:
        parser.error(f"no positions in {args.positions}")
    try:
        tls = tls_context(args.ca)  # None: the system's trust store (for wss://)
    except ValueError as exc:
        parser.error(str(exc))
    manager = Manager(positions, args.alerts)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        with ClientThread(
            args.url, api_key=args.api_key, first_connect_timeout=args.connect_timeout, ssl=tls
        ) as client:
            client.subscribe(list(manager.positions), mode="quote", on_tick=manager.on_tick)
            emit(f"# managing {len(positions)} positions from {args.positions} on {args.url}")
            while deadline is None or time.monotonic() < deadline:
                wait = args.interval if deadline is None else min(args.interval, deadline - time.monotonic())
                time.sleep(max(0.0, wait))
                emit(manager.report())
                if client.error is not None:
                    raise client.error
    except ClientError as exc:
        sys.stderr.write(f"trade_manager: {exc}\n")
        return 1
    except KeyboardInterrupt:
        pass
    emit(f"# done: {manager.ticks} ticks, {manager.alerts} alerts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
