"""Finding 6: 1,000 sockets from one address trickling a byte a second must not lock new clients
out: a per-address cap on pending handshakes and a short first-byte/handshake deadline keep room."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
import websockets

from tests.support import client, running_system

pytestmark = pytest.mark.timing

SLOWLORIS = Path(__file__).with_name("slowloris.py")
SOCKETS = 1000
ATTACKER_ADDRESS = "127.0.0.2"  # loopback is 127/8: the attacker has an address of its own
NEW_CLIENTS = 20


@pytest.mark.slow
async def test_slowloris_at_1000_sockets_leaves_room_for_new_clients() -> None:
    async with running_system() as system:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SLOWLORIS), "127.0.0.1", str(system.proxy.port), str(SOCKETS), "6",
            ATTACKER_ADDRESS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"attacking\n"
            await asyncio.sleep(1.0)  # every slow socket has sent its first byte
            admitted = 0
            worst = 0.0
            refusals: list[str] = []
            for _ in range(NEW_CLIENTS):
                started = time.monotonic()
                try:
                    async with asyncio.timeout(2), client(system.url) as c:
                        pong = await c.reply({"action": "ping"}, within=2)
                        admitted += pong["type"] == "pong"
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                    refusals.append(f"{type(exc).__name__}: {exc}")
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.05)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        report = json.loads(out.decode().strip().splitlines()[-1])
        print(f"\nFIGURES slowloris: {admitted}/{NEW_CLIENTS} new clients in, worst {worst * 1000:.0f} ms; {report}")
        assert report["opened"] + report["refused"] == SOCKETS, (report, err.decode()[-500:])
        assert admitted == NEW_CLIENTS, (
            f"{NEW_CLIENTS - admitted} of {NEW_CLIENTS} new clients locked out ({refusals[:3]}); {report}"
        )
        assert worst < 2.0, f"a new client took {worst:.2f} s to get in"
