"""The `history` bench rows run on a small recording (the rates themselves are for `make bench`)."""

from __future__ import annotations

from pathlib import Path

from bench import history


async def test_recorder_and_replay_rows_measure_real_work(tmp_path: Path) -> None:
    frames = history.quote_frames(3000)
    cpu, wall = history.recorder_rate(tmp_path, frames)
    assert cpu > 0 and wall > 0  # and the files exist: replay reads them back
    assert await history.replay_rate(tmp_path, 3000) > 0  # 0 when nothing came back from the store
