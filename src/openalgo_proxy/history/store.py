"""Writing ticks to the Parquet store: batches in, one atomically renamed file per partition out.

The recorder collects raw bus frames per partition (`Batch`); the store turns a batch into one
Arrow table (Arrow's JSON reader parses the `data` objects in C++, off the GIL) and writes it to a
dot-named temporary file that is fsynced and then renamed into place. A crash loses the batch in
memory and at worst leaves a ``.tmp`` file (removed at the next start), never a half-written
``.parquet`` file.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from openalgo_proxy.history.schema import DATA_FIELDS, TICK_SCHEMA, partition_dir

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
_PARSE = pa_json.ParseOptions(explicit_schema=DATA_FIELDS, unexpected_field_behavior="ignore")
_READ = pa_json.ReadOptions(block_size=1 << 24)


@dataclass(slots=True)
class Batch:
    """Raw frames of one partition: the `data` objects, their seqs and receive times (epoch ms)."""

    date: str
    exchange: str
    mode: int
    data: list[bytes] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.data)


def to_table(batch: Batch) -> pa.Table:
    """The batch as a table of TICK_SCHEMA."""
    parsed = pa_json.read_json(io.BytesIO(b"\n".join(batch.data)), read_options=_READ, parse_options=_PARSE)
    columns = [parsed.column(name) for name in DATA_FIELDS.names]
    columns.append(pa.array(batch.received, pa.int64()).cast(pa.timestamp("ms", tz="UTC")))
    columns.append(pa.array(batch.seqs, pa.uint64()))
    return pa.Table.from_arrays(columns, schema=TICK_SCHEMA)


class TickStore:
    """The writer side of one store root. Not thread-safe: one writer thread uses it."""

    def __init__(self, root: str | Path, writer_id: str | None = None) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.writer_id = writer_id or f"{os.getpid()}"
        self.files_written = 0
        self.rows_written = 0
        self.bytes_written = 0
        self._counter = 0

    def remove_leftovers(self) -> int:
        """Delete temporary files a killed writer left behind; how many."""
        removed = 0
        for path in self.root.rglob("*" + TMP_SUFFIX):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def write(self, batch: Batch) -> Path | None:
        """Write one batch as one file; its path (None for an empty batch)."""
        if not batch.data:
            return None
        table = to_table(batch)
        folder = self.root / partition_dir(batch.date, batch.exchange, batch.mode)
        folder.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        name = f"part-{min(batch.received)}-{self.writer_id}-{self._counter}.parquet"
        final = folder / name
        temp = folder / f".{name}{TMP_SUFFIX}"
        with open(temp, "wb") as sink:
            pq.write_table(table, sink, compression="zstd")
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, final)
        _fsync_dir(folder)
        size = final.stat().st_size
        self.files_written += 1
        self.rows_written += table.num_rows
        self.bytes_written += size
        return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_usage(root: str | Path) -> dict[str, int]:
    """Bytes of closed files per IST date (``date=...`` folder name without the key)."""
    usage: dict[str, int] = {}
    base = Path(root).expanduser()
    if not base.is_dir():
        return usage
    for day in sorted(base.glob("date=*")):
        usage[day.name.split("=", 1)[1]] = sum(p.stat().st_size for p in day.rglob("*.parquet"))
    return usage


def apply_retention(root: str | Path, keep_days: int, today: str) -> list[str]:
    """Delete whole dates older than `keep_days` days before `today` (YYYY-MM-DD); the dates removed.
    keep_days 0 keeps everything."""
    if keep_days <= 0:
        return []
    import datetime as dt

    cutoff = (dt.date.fromisoformat(today) - dt.timedelta(days=keep_days)).isoformat()
    removed = []
    base = Path(root).expanduser()
    for day in sorted(base.glob("date=*")):
        date = day.name.split("=", 1)[1]
        if date <= cutoff:
            shutil.rmtree(day)
            removed.append(date)
            log.info("retention: removed recorded ticks of %s", date)
    return removed


def latest_received(root: str | Path, newest_files: int = 8) -> int | None:
    """Receive time (epoch ms) of the newest recorded tick, or None for an empty store. Reads only the
    newest few files of the newest date (file names start with their first receive time)."""
    base = Path(root).expanduser()
    for day in sorted(base.glob("date=*"), reverse=True):
        files = sorted(day.rglob("*.parquet"), key=_first_received)[-newest_files:]
        newest = 0
        for path in files:
            column = pq.read_table(path, columns=["received"]).column("received")
            value = pc.max(column.cast(pa.int64())).as_py()
            if value is not None:
                newest = max(newest, int(value))
        if newest:
            return newest
    return None


def _first_received(path: Path) -> int:
    """The first receive time in a store file's name (part-<ms>-<writer>-<n>.parquet); 0 if none."""
    parts = path.name.split("-")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0


def now_ms() -> int:
    return int(time.time() * 1000)
