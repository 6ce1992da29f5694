"""`python -m bench [SCENARIO] [flags]`: run scenarios against baseline, proxy and ceiling; print one table.

Scenarios: fanout, wide, idle, smoke, codec, history (recorder and replay), chain, all (fanout, wide, idle,
codec, history, chain). Flags scale them down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench import chain as chain_bench
from bench import codec, dhan_codec, noren_codec, upstox_codec
from bench.report import Row, engine_ratios, summarize, table
from bench.runner import RunResult, run_once
from bench.scenarios import SCENARIOS, SERVERS, Scenario

ALL = ("fanout", "wide", "idle", "codec", "history", "chain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", nargs="?", default="all", choices=[*SCENARIOS, "codec", "history", "chain", "all"])
    parser.add_argument("--duration", type=float, help="measurement window per run, seconds")
    parser.add_argument("--warmup", type=float, help="seconds between all subscribed and the window")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--subscriptions", type=int, help="subscriptions per client")
    parser.add_argument("--symbols", type=int, help="symbol universe of the feed")
    parser.add_argument("--rate", type=float, help="ticks per second into the bus (all symbols)")
    parser.add_argument("--mode", type=int, choices=(1, 2, 3), help="subscription mode (data size)")
    parser.add_argument("--swarm-procs", type=int, help="client swarm processes")
    parser.add_argument("--checkers", type=int, help="clients that check seq gaps and latency")
    parser.add_argument("--concurrency", type=int, help="handshakes in flight per swarm process")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma list of baseline,proxy,ceiling")
    parser.add_argument("--repeat", type=int, default=1, help="runs per server; the table shows medians")
    parser.add_argument("--pin", action="store_true", default=None, help="server alone on CPU 0, the rest elsewhere")
    parser.add_argument("--profile", action="store_true", help="py-spy the server during the window")
    parser.add_argument("--json", type=Path, help="also write rows and raw runs as JSON here")
    parser.add_argument("--logs", type=Path, help="folder for child logs (default: a temp folder)")
    return parser


def scenario_from(args: argparse.Namespace, name: str) -> Scenario:
    return SCENARIOS[name].scaled(
        duration=args.duration,
        warmup=args.warmup,
        clients=args.clients,
        subscriptions=args.subscriptions,
        symbols=args.symbols,
        rate=args.rate,
        mode=args.mode,
        swarm_procs=args.swarm_procs,
        checkers=args.checkers,
        concurrency=args.concurrency,
        pin=args.pin,
    )


async def run_scenario(
    scenario: Scenario, servers: list[str], repeat: int, logs: Path, profile: bool = False
) -> list[RunResult]:
    results: list[RunResult] = []
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cancels the run, so every child process is stopped on the way out
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    for attempt in range(repeat):
        for server in servers:  # interleaved, so drift in machine load hits every server alike
            sys.stderr.write(f"bench: {scenario.name} / {server} run {attempt + 1}/{repeat}\n")
            result = await run_once(scenario, server, logs, profile)
            if not result.ok:
                sys.stderr.write(f"bench: {scenario.name} / {server} failed: {result.error}\n")
            results.append(result)
    return results


def header(args: argparse.Namespace) -> str:
    from importlib.metadata import version

    import msgspec
    import zmq

    from openalgo_proxy import __version__

    return (
        f"openalgo-proxy {__version__} | Python {platform.python_version()}"
        f" | websockets {version('websockets')} | uvloop {version('uvloop')}"
        f" | pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}) | msgspec {msgspec.__version__}"
        f" | {platform.machine()} {platform.system()} | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = ALL if args.scenario == "all" else (args.scenario,)
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        sys.stderr.write(f"bench: unknown server(s): {', '.join(sorted(unknown))}\n")
        return 2
    logs = args.logs or Path(tempfile.mkdtemp(prefix="openalgo-bench-"))
    rows: list[Row] = []
    raw: list[RunResult] = []
    codec_line = ""
    chain_line = ""
    for name in names:
        if name == "chain":
            chain_line = chain_bench.run()
            continue
        if name == "codec":
            rate, note = codec.run()
            codec_line = f"codec: {rate:,.0f} SnapQuote packets/s ({note})" if rate else f"codec: {note}"
            dhan_rate, dhan_note = dhan_codec.run()
            codec_line += f"\ndhan codec: {dhan_rate:,.0f} Full packets/s ({dhan_note})"
            noren_rate, noren_note = noren_codec.run()
            codec_line += f"\nnoren codec: {noren_rate:,.0f} messages/s ({noren_note})"
            upstox_rate, upstox_note = upstox_codec.run()
            codec_line += f"\nupstox codec: {upstox_rate:,.0f} full-feed messages/s ({upstox_note})"
            continue
        if name == "history":
            from bench import history

            codec_line = (codec_line + "\n" if codec_line else "") + history.run()
            continue
        scenario = scenario_from(args, name)
        results = asyncio.run(run_scenario(scenario, servers, max(1, args.repeat), logs, args.profile))
        raw.extend(results)
        rows.extend(summarize(name, scenario.idle, results))
    out = [header(args)]
    if rows:
        out.append(table(rows))
        out.extend(engine_ratios(rows))
    for result in raw:
        if result.profile:
            out.append(f"profile of {result.server} in {result.scenario}:")
            out.extend(result.profile)
    if codec_line:
        out.append(codec_line)
    if chain_line:
        out.append(chain_line)
    out.append(f"child logs: {logs}")
    sys.stdout.write("\n".join(out) + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [asdict(row) for row in rows],
                    "runs": [
                        {
                            **{k: v for k, v in asdict(r).items() if k not in ("latency", "handshake")},
                            "latency": r.latency.to_json(),
                            "handshake": r.handshake.to_json(),
                        }
                        for r in raw
                    ],
                },
                indent=1,
                default=str,
            )
        )
    failed = [r for r in raw if not r.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
