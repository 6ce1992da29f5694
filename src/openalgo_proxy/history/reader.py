"""Reading the tick store: ticks of an instrument in a time range, in order, with pyarrow datasets.

Blocking (file I/O and decoding): callers on an event loop run these in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from openalgo_proxy.history.schema import PARTITIONING, TICK_SCHEMA, ist_date

#: columns of a tick row as readers get them (the partition keys included)
ROW_SCHEMA = pa.unify_schemas([TICK_SCHEMA, PARTITIONING])


@dataclass(frozen=True, slots=True)
class TickQuery:
    start_ms: int  # inclusive, exchange-time independent: the receive time
    end_ms: int  # exclusive
    exchange: str | None = None
    symbol: str | None = None
    mode: int | None = None  # None: every mode recorded


def dataset(root: str | Path) -> ds.Dataset | None:
    base = Path(root).expanduser()
    if not base.is_dir() or not any(base.glob("date=*")):
        return None
    return ds.dataset(
        str(base),
        format="parquet",
        partitioning=ds.partitioning(PARTITIONING, flavor="hive"),
        schema=ROW_SCHEMA,
    )


def _filter(query: TickQuery) -> ds.Expression:
    first, last = ist_date(query.start_ms), ist_date(max(query.start_ms, query.end_ms - 1))
    received = ds.field("received").cast(pa.int64())
    expr = (
        (ds.field("date") >= first)
        & (ds.field("date") <= last)
        & (received >= query.start_ms)
        & (received < query.end_ms)
    )
    if query.exchange is not None:
        expr = expr & (ds.field("exchange") == query.exchange)
    if query.symbol is not None:
        expr = expr & (ds.field("symbol") == query.symbol)
    if query.mode is not None:
        expr = expr & (ds.field("mode") == query.mode)
    return expr


def read_ticks(root: str | Path, query: TickQuery, columns: list[str] | None = None) -> pa.Table:
    """Every matching tick, sorted by receive time then seq (an empty table when none)."""
    data = dataset(root)
    if data is None:
        return ROW_SCHEMA.empty_table() if columns is None else ROW_SCHEMA.empty_table().select(columns)
    wanted = None if columns is None else sorted(set(columns) | {"received", "seq"}, key=ROW_SCHEMA.names.index)
    table = data.to_table(columns=wanted, filter=_filter(query))
    table = table.sort_by([("received", "ascending"), ("seq", "ascending")])
    return table if columns is None else table.select(columns)


def instruments(root: str | Path, query: TickQuery) -> list[tuple[str, str, int]]:
    """(exchange, symbol, mode) triples with ticks in the range."""
    data = dataset(root)
    if data is None:
        return []
    table = data.to_table(columns=["exchange", "symbol", "mode"], filter=_filter(query))
    grouped = table.group_by(["exchange", "symbol", "mode"]).aggregate([])
    return sorted(zip(*(grouped.column(n).to_pylist() for n in ("exchange", "symbol", "mode")), strict=True))


def iter_rows(table: pa.Table, chunk: int = 65_536) -> Iterator[dict[str, object]]:
    """Rows as dicts, decoded a chunk at a time."""
    for start in range(0, table.num_rows, chunk):
        yield from table.slice(start, chunk).to_pylist()


def epoch_ms(column: pa.ChunkedArray) -> list[int]:
    """A timestamp column as epoch milliseconds."""
    return [int(v) for v in pc.cast(column, pa.int64()).to_pylist()]
