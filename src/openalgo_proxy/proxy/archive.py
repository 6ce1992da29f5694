"""The proxy's tick-store reader for `history` requests: queries run in a small thread pool, so the
event loop never waits on disk or Parquet decoding; the answer comes back on the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from openalgo_proxy.proxy import protocol as proto
from openalgo_proxy.proxy.session import HistoryAnswer

log = logging.getLogger(__name__)


class StoreArchive:
    def __init__(self, root: str, workers: int = 2) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="history")

    def fetch(self, query: proto.History, done: Callable[[HistoryAnswer], None]) -> None:
        loop = asyncio.get_running_loop()
        future: Future[HistoryAnswer] = self._pool.submit(self._answer, query)

        def deliver(finished: Future[HistoryAnswer]) -> None:
            loop.call_soon_threadsafe(done, finished.result())

        future.add_done_callback(deliver)

    def _answer(self, query: proto.History) -> HistoryAnswer:
        from openalgo_proxy.history.query import candles_between, ticks_between  # pyarrow only when asked

        try:
            if query.interval == "ticks":
                rows = ticks_between(
                    self.root,
                    query.exchange,
                    query.symbol,
                    query.start,
                    query.end,
                    limit=query.limit + 1,
                    offset=query.offset,
                )
            else:
                rows = candles_between(
                    self.root,
                    query.exchange,
                    query.symbol,
                    query.interval,
                    query.start,
                    query.end,
                    limit=query.limit + 1,
                    offset=query.offset,
                )
        except (OSError, ValueError) as exc:  # unreadable files; pyarrow's errors subclass these
            log.warning("history %s %s: %s", query.exchange, query.symbol, exc)
            return f"the tick store could not be read: {exc}"
        return rows[: query.limit], len(rows) > query.limit

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
