"""The benchmark suite's smoke scenario, scaled tiny: every process starts, talks and stops.

No absolute time thresholds: a noisy machine may be slow, but it must deliver, lose nothing for
clients that keep up, and print the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.__main__ import main

pytestmark = pytest.mark.slow


def test_smoke_scenario_runs_all_servers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "smoke.json"
    code = main(
        [
            "smoke",
            "--duration",
            "1.5",
            "--warmup",
            "0.3",
            "--clients",
            "3",
            "--subscriptions",
            "5",
            "--symbols",
            "10",
            "--rate",
            "200",
            "--json",
            str(out),
            "--logs",
            str(tmp_path / "logs"),
        ]
    )
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert code == 0, printed
    assert "delivered/s" in printed and "proxy" in printed
    runs = {run["server"]: run for run in report["runs"]}
    assert set(runs) == {"baseline", "proxy", "ceiling", "proxy-nats"}
    assert "smoke: NATS / ZeroMQ bus: delivered" in printed  # the engine ratio line
    for server, run in runs.items():
        assert run["ok"], run["error"]
        assert run["clients_ready"] == 3 and run["clients_failed"] == 0, server
        assert run["delivered"] > 0, server
        assert run["checked"] > 0, server  # checker clients saw seq numbers and timestamps
    for proxy in (runs["proxy"], runs["proxy-nats"]):
        assert proxy["closed"] == 0 and proxy["sub_errors"] == 0
        assert proxy["gaps"] == 0, "a client that keeps up lost ticks"
