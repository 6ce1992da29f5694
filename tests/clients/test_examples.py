"""The examples, as a user runs them, for a few seconds against a live system."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import REPO, LiveSystem
from tests.support import System

pytestmark = [pytest.mark.xdist_group("live-system"), pytest.mark.slow]

EXAMPLES = REPO / "examples"


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out


def test_examples_produce_signals_pnl_and_alerts(live_system: LiveSystem, tmp_path: Path) -> None:
    positions = tmp_path / "positions.csv"
    positions.write_text(
        "instrument,quantity,average_price,stop_loss,target\n"
        "NSE:RELIANCE,10,1000.00,900.00,1100.00\n"  # far below the market: target reached at once
        "NSE:INFY,-20,1530.00,1.00,0\n"  # short with a stop at 1: stopped out at once
        "NSE:SBIN,100,965.00,0,0\n"  # no levels: never alerts
    )
    alerts = tmp_path / "alerts.jsonl"
    url = ("--url", live_system.url)
    crossover = start("ma_crossover.py", *url, "--fast", "2", "--slow", "4", "--seconds", "4", "--json")
    bounded = ("--seconds", "3", "--interval", "1")
    manager = start("trade_manager.py", str(positions), *url, *bounded, "--alerts", str(alerts))
    shipped = start("trade_manager.py", *url, "--seconds", "2", "--interval", "1")

    lines = finish(crossover).splitlines()
    done = re.search(r"# done: (\d+) ticks, (\d+) signals", lines[-1])
    assert done, lines[-3:]
    ticks, count = int(done.group(1)), int(done.group(2))
    signals = [json.loads(line) for line in lines if line.startswith("{")]
    assert ticks > 20 and count == len(signals) >= 1
    for signal in signals:
        assert signal["side"] in ("BUY", "SELL") and signal["price"] > 0
        assert (signal["fast"] > signal["slow"]) == (signal["side"] == "BUY")

    out = finish(manager)
    assert re.search(r"ALERT TARGET NSE:RELIANCE ltp \d+\.\d\d", out)
    assert re.search(r"ALERT STOP_LOSS NSE:INFY ltp \d+\.\d\d", out)
    recorded = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert sorted(a["alert"] for a in recorded) == ["STOP_LOSS", "TARGET"]  # each once, however many ticks
    target = next(a for a in recorded if a["alert"] == "TARGET")
    assert target["pnl"] == round((target["ltp"] - 1000.0) * 10, 2)
    report = out.split("# done")[0]
    assert re.search(r"NSE:SBIN\s+100\s+965\.00\s+\d+\.\d\d", report)  # live LTP in the P&L table
    assert "total P&L" in report

    shipped_out = finish(shipped)
    for instrument in ("NSE:RELIANCE", "NSE:INFY", "NSE:HDFCBANK", "NSE:TCS", "NSE:SBIN"):
        assert re.search(rf"{instrument}\s+-?\d+\s+\d+\.\d\d\s+\d+\.\d\d", shipped_out), instrument


async def run_example(*args: str, within: float = 40.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(within):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_examples_reach_a_wss_proxy_with_ca_option(tls_system: System, ca_file: Path) -> None:
    url = ("--url", tls_system.url)
    crossover = str(EXAMPLES / "ma_crossover.py")
    manager = str(EXAMPLES / "trade_manager.py")
    code, out, err = await run_example(
        crossover, *url, "--ca", str(ca_file), "--seconds", "3", "--fast", "2", "--slow", "3"
    )
    assert code == 0, err
    done = re.search(r"# done: (\d+) ticks", out)
    assert done and int(done.group(1)) > 0, out
    code, out, err = await run_example(manager, *url, "--ca", str(ca_file), "--seconds", "2", "--interval", "1")
    assert code == 0, err
    assert re.search(r"NSE:RELIANCE\s+-?\d+\s+\d+\.\d\d\s+\d+\.\d\d", out), out
    # without the CA: a clear TLS error, exit 1
    code, out, err = await run_example(crossover, *url, "--connect-timeout", "2", "--seconds", "10")
    assert code == 1 and "TLS certificate verify failed" in err, err
    code, out, err = await run_example(manager, *url, "--connect-timeout", "2", "--seconds", "10")
    assert code == 1 and "TLS certificate verify failed" in err, err
