"""The outbox: one write per flush, replies after pending frames, pause/resume, close."""

from __future__ import annotations

from openalgo_proxy.proxy.frames import text_frame
from openalgo_proxy.proxy.metrics import ProxyMetrics
from tests.unit.proxy_support import outbox


def test_flush_joins_pending_frames_into_one_write_and_counts_bytes() -> None:
    metrics = ProxyMetrics()
    box, wire = outbox(metrics)
    box.flush()
    assert wire.writes == []
    box.append(b"a")
    box.append(b"bc")
    box.flush()
    assert wire.writes == [b"abc"] and metrics.bytes_out == 3 and box.pending == []
    box.append(b"d")
    box.flush()
    assert wire.writes == [b"abc", b"d"]


def test_a_reply_goes_after_what_is_pending_in_the_same_write() -> None:
    box, wire = outbox()
    box.append(b"tick")
    box.send(b'{"type":"pong"}')
    assert wire.writes == [b"tick" + text_frame(b'{"type":"pong"}')]
    box.send_frames([b"s1", b"s2"])
    assert wire.writes[-1] == b"s1s2"


def test_resume_writes_the_conflated_frames_once() -> None:
    metrics = ProxyMetrics()
    box, wire = outbox(metrics)
    box.pause(3.0)
    assert box.paused and box.paused_since == 3.0
    box.conflated["x"] = b"X"  # type: ignore[index]  # the hub keys by TopicState
    box.conflated["y"] = b"Y"  # type: ignore[index]
    box.resume()
    assert not box.paused and wire.writes == [b"XY"] and not box.conflated and metrics.bytes_out == 2
    box.resume()
    assert wire.writes == [b"XY"]


def test_a_closed_outbox_writes_nothing() -> None:
    box, wire = outbox()
    box.append(b"late")
    box.close()
    box.send(b"{}")
    box.append(b"later")
    box.flush()
    assert wire.writes == []
