"""Finding 1, shutdown: SIGTERM to `openalgo-proxy run` while clients flood it ends the process
tree within the documented bound (compose allows 15 s before SIGKILL), without a traceback."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import psutil
import pytest

from tests.hostile.support import SIGTERM_WITHIN, Attacker
from tests.support import free_port

pytestmark = pytest.mark.timing

ATTACKERS = 2


@pytest.mark.slow
async def test_sigterm_during_a_pong_flood_exits_within_the_bound() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", "--port", str(port), "--broker", "simulator",
        "--bus", f"tcp://127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    attackers = [Attacker("pong", port, 20.0) for _ in range(ATTACKERS)]
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"ready: ws://" in line, line
        children = psutil.Process(proc.pid).children(recursive=True)
        for attacker in attackers:
            await attacker.__aenter__()
        await asyncio.sleep(1.5)  # the flood is on
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), SIGTERM_WITHIN + 10)
        took = time.monotonic() - started
        stderr = (await proc.stderr.read()).decode()
    finally:
        for attacker in attackers:
            await attacker.__aexit__(None, None, None)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    print(f"\nFIGURES sigterm during a pong flood: exited {took:.2f} s after SIGTERM, code {code}")
    assert took <= SIGTERM_WITHIN, f"exited {took:.1f} s after SIGTERM (bound {SIGTERM_WITHIN} s)"
    assert code == 0, stderr[-2000:]
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"orphans left: {alive}"
    assert "Traceback" not in stderr, stderr[-2000:]
