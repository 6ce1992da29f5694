"""Medians over repeated runs, ratios to the references, and the one table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.runner import RunResult


@dataclass
class Row:
    scenario: str
    server: str
    runs: int
    failed: int
    delivered: float
    due: float
    loss: float
    p50: float
    p99: float
    p999: float
    max_ms: float
    cpu: float
    rss_mib: float
    kib_per_conn: float
    handshake_p99: float
    swarm_cpu: float
    connect_rate: float
    setup_cpu_us: float
    own_p50: float
    own_p99: float
    notes: list[str]
    idle: bool
    vs_baseline: float = math.nan
    of_ceiling: float = math.nan
    efficiency_of_ceiling: float = math.nan  # messages per server CPU-second, % of the ceiling's

    @property
    def per_cpu_second(self) -> float:
        """Messages delivered per second of server CPU: comparable even when all deliver all."""
        return self.delivered / (self.cpu / 100) if self.cpu > 0 else math.nan


def _median(results: Sequence[RunResult], get: Callable[[RunResult], float]) -> float:
    values = [v for v in (get(r) for r in results) if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def summarize(scenario: str, idle: bool, results: Sequence[RunResult]) -> list[Row]:
    rows: list[Row] = []
    servers = list(dict.fromkeys(r.server for r in results))
    for server in servers:
        mine = [r for r in results if r.server == server]
        ok = [r for r in mine if r.ok]
        notes = sorted({n for r in ok for n in r.notes}) + [r.error.splitlines()[0] for r in mine if not r.ok]
        rows.append(
            Row(
                scenario=scenario,
                server=server,
                runs=len(ok),
                failed=len(mine) - len(ok),
                delivered=_median(ok, lambda r: r.delivered),
                due=_median(ok, lambda r: r.due),
                loss=_median(ok, lambda r: r.loss),
                p50=_median(ok, lambda r: r.latency.percentile_ms(0.5)),
                p99=_median(ok, lambda r: r.latency.percentile_ms(0.99)),
                p999=_median(ok, lambda r: r.latency.percentile_ms(0.999)),
                max_ms=_median(ok, lambda r: r.latency.max_us / 1000 if r.latency.count else math.nan),
                cpu=_median(ok, lambda r: r.server_cpu),
                rss_mib=_median(ok, lambda r: r.server_rss / 2**20),
                kib_per_conn=_median(ok, lambda r: r.kib_per_conn),
                handshake_p99=_median(ok, lambda r: r.handshake.percentile_ms(0.99)),
                swarm_cpu=_median(ok, lambda r: max(r.swarm_cpu, default=0.0)),
                connect_rate=_median(ok, lambda r: r.connect_rate),
                setup_cpu_us=_median(ok, lambda r: r.setup_cpu_us),
                own_p50=_median(ok, lambda r: r.own_p50),
                own_p99=_median(ok, lambda r: r.own_p99),
                notes=notes,
                idle=idle,
            )
        )
    by_server = {row.server: row for row in rows}

    def figure(row: Row) -> float:
        # higher is better: throughput, or connections per MiB when idle
        if row.idle:
            return 1024 / row.kib_per_conn if row.kib_per_conn and row.kib_per_conn > 0 else math.nan
        return row.delivered

    for row in rows:
        baseline, ceiling = by_server.get("baseline"), by_server.get("ceiling")
        if baseline is not None and figure(baseline) > 0:
            row.vs_baseline = figure(row) / figure(baseline)
        if ceiling is not None and figure(ceiling) > 0:
            row.of_ceiling = figure(row) / figure(ceiling) * 100
        if ceiling is not None and not row.idle and ceiling.per_cpu_second > 0:
            row.efficiency_of_ceiling = row.per_cpu_second / ceiling.per_cpu_second * 100
    return rows


def _num(value: float, fmt: str) -> str:
    return "-" if math.isnan(value) else format(value, fmt)


COLUMNS = (
    ("scenario", 8),
    ("server", 8),
    ("runs", 4),
    ("delivered/s", 12),
    ("due/s", 12),
    ("loss", 7),
    ("p50 ms", 7),
    ("p99 ms", 7),
    ("p99.9 ms", 8),
    ("max ms", 8),
    ("CPU %", 6),
    ("RSS MiB", 7),
    ("KiB/conn", 8),
    ("hs p99 ms", 9),
    ("swarm %", 7),
    ("x base", 7),
    ("% ceil", 7),
    ("msg/CPU-s", 10),
    ("eff %ceil", 9),
)


def table(rows: Sequence[Row]) -> str:
    lines = [" ".join(name.rjust(width) for name, width in COLUMNS)]
    lines.append(" ".join("-" * width for _, width in COLUMNS))
    notes: list[str] = []
    for row in rows:
        cells = (
            row.scenario,
            row.server,
            f"{row.runs}" + (f"/{row.runs + row.failed}" if row.failed else ""),
            "-" if row.idle else _num(row.delivered, ",.0f"),
            "-" if row.idle else _num(row.due, ",.0f"),
            "-" if row.idle else _num(row.loss * 100, ".2f") + ("%" if not math.isnan(row.loss) else ""),
            _num(row.p50, ".2f"),
            _num(row.p99, ".2f"),
            _num(row.p999, ".2f"),
            _num(row.max_ms, ".1f"),
            _num(row.cpu, ".0f"),
            _num(row.rss_mib, ".0f"),
            _num(row.kib_per_conn, ".1f") if row.idle else "-",
            _num(row.handshake_p99, ".1f"),
            _num(row.swarm_cpu, ".0f"),
            _num(row.vs_baseline, ".2f"),
            _num(row.of_ceiling, ".0f"),
            "-" if row.idle else _num(row.per_cpu_second, ",.0f"),
            _num(row.efficiency_of_ceiling, ".0f"),
        )
        lines.append(" ".join(str(cell).rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True)))
        if row.connect_rate and row.idle:
            notes.append(
                f"  {row.scenario}/{row.server}: {row.connect_rate:,.0f} clients/s connected+subscribed,"
                f" server CPU {row.setup_cpu_us:,.0f} us per client setup"
            )
        if not math.isnan(row.own_p99):
            notes.append(
                f"  {row.scenario}/{row.server}: its own tick_to_send metric (bus drain -> socket write, whole run,"
                f" bucket bounds) p50 <= {row.own_p50:g} ms, p99 <= {row.own_p99:g} ms"
            )
        notes.extend(f"  {row.scenario}/{row.server}: {note}" for note in row.notes)
    lines.append(
        "loss: seq gaps seen by checker clients; x base / % ceil: delivered msg/s (idle: connections per MiB)"
        " vs the references; msg/CPU-s: delivered per server CPU-second"
    )
    if notes:
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)


def engine_ratios(rows: Sequence[Row]) -> list[str]:
    """The proxy on NATS as ratios to the proxy on ZeroMQ, per scenario: delivered msg/s, p99, and
    proxy CPU per delivered message (issue goal: >= 0.9x delivered at the same p99 budget)."""
    lines = []
    for scenario in dict.fromkeys(row.scenario for row in rows):
        by_server = {row.server: row for row in rows if row.scenario == scenario}
        zmq, nats = by_server.get("proxy"), by_server.get("proxy-nats")
        if zmq is None or nats is None or zmq.idle or not zmq.delivered or not nats.delivered:
            continue
        cpu_per_msg = (nats.cpu / nats.delivered) / (zmq.cpu / zmq.delivered) if zmq.cpu else math.nan
        lines.append(
            f"{scenario}: NATS / ZeroMQ bus: delivered {nats.delivered / zmq.delivered:.2f}x, "
            f"p99 {nats.p99 / zmq.p99:.2f}x ({nats.p99:.1f} vs {zmq.p99:.1f} ms), "
            f"proxy CPU per message {cpu_per_msg:.2f}x"
        )
    return lines
