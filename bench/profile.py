"""Optional sampling profile of the server under test (py-spy, if installed; not a pinned dependency)."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record_argv(exe: str, pid: int, seconds: float | None, out: Path) -> list[str]:
    """py-spy for `seconds`, or (None) until it gets SIGINT."""
    duration = ["--duration", str(max(1, round(seconds)))] if seconds is not None else []
    return [
        exe,
        "record",
        "--pid",
        str(pid),
        *duration,
        "--rate",
        "250",
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
    ]


def summarize(folded: Path, top: int = 12) -> list[str]:
    """Top frames by self time and by inclusive time, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    try:
        lines = folded.read_text(errors="replace").splitlines()
    except OSError:
        return [f"no profile written at {folded}"]
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [_short(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return ["profile is empty"]
    out = [f"self time (of {total} samples):"]
    out += [f"  {n / total * 100:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out.append("inclusive time:")
    out += [f"  {n / total * 100:5.1f}%  {frame}" for frame, n in inclusive.most_common(top + 8)]
    return out


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py:123)`."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    path = where.rstrip(")")
    return f"{name} ({path.rsplit('/', 1)[-1]})"
