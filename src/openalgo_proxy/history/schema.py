"""The tick store's layout and schema (documented in docs/history.md).

Files: ``ROOT/date=YYYY-MM-DD/exchange=EXCHANGE/mode=M/part-<first received ms>-<writer id>-<n>.parquet``
(hive partitioning; the date is the IST date the recorder received the ticks). Partition columns are
not repeated inside the files. Every file has the one schema below, whatever its mode: fields a mode
does not carry are null (Quote fields in LTP rows, the book in LTP and Quote rows).
A file being written is a dot file ending in ``.tmp``; every reader skips it.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from openalgo_proxy.history.sessions import IST

LEVEL = pa.struct([("price", pa.float64()), ("quantity", pa.int64()), ("orders", pa.int64())])

#: the fields of a bus `data` object the store keeps, as the JSON reader parses them
DATA_FIELDS = pa.schema(
    [
        ("symbol", pa.string()),
        ("ltp", pa.float64()),
        ("ltt", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.int64()),
        ("avg_trade_price", pa.float64()),
        ("last_trade_quantity", pa.int64()),
        ("total_buy_quantity", pa.int64()),
        ("total_sell_quantity", pa.int64()),
        ("oi", pa.int64()),
        ("upper_circuit", pa.float64()),
        ("lower_circuit", pa.float64()),
        ("depth", pa.struct([("buy", pa.list_(LEVEL)), ("sell", pa.list_(LEVEL))])),
    ]
)

#: what the store adds from the bus frame and the recorder's clock
FRAME_FIELDS = pa.schema([("received", pa.timestamp("ms", tz="UTC")), ("seq", pa.uint64())])

TICK_SCHEMA = pa.unify_schemas([DATA_FIELDS, FRAME_FIELDS])

#: the hive partition keys, in directory order
PARTITIONING = pa.schema([("date", pa.string()), ("exchange", pa.string()), ("mode", pa.int8())])


def ist_date(epoch_ms: int) -> str:
    """YYYY-MM-DD of the IST day holding `epoch_ms`."""
    return dt.datetime.fromtimestamp(epoch_ms / 1000, IST).strftime("%Y-%m-%d")


def partition_dir(date: str, exchange: str, mode: int) -> str:
    return f"date={date}/exchange={exchange}/mode={mode}"
