"""OpenAlgo's `WS_PROXY_STATS_FILE`, written atomically every 10 s (and on change) for its Health Monitor page.

Keys: `timestamp` (epoch seconds, float), `total_connections` (broker feeds), `total_symbols`
(unique subscribed instruments), `clients_connected`, `brokers` (one name per feed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

INTERVAL = 10.0
CHANGE_CHECK = 1.0


def write_atomically(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StatsWriter:
    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]], interval: float = INTERVAL) -> None:
        self.path = path
        self.snapshot = snapshot
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.writes = 0

    def write_now(self, snapshot: dict[str, Any] | None = None) -> None:
        body = {"timestamp": time.time(), **(snapshot if snapshot is not None else self.snapshot())}
        try:
            write_atomically(self.path, body)
            self.writes += 1
        except OSError as exc:
            if self.writes == 0 or self.writes % 360 == 0:
                log.warning("openalgo: cannot write the stats file %s: %s", self.path, exc.strerror)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openalgo-stats")

    async def _run(self) -> None:
        """Every `interval`, and within a second of any change (a feed appears, a client leaves)."""
        last: dict[str, Any] | None = None
        written = 0.0
        while True:
            snapshot = self.snapshot()
            now = time.monotonic()
            if snapshot != last or now - written >= self.interval:
                self.write_now(snapshot)
                last, written = snapshot, now
            await asyncio.sleep(min(CHANGE_CHECK, self.interval))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
