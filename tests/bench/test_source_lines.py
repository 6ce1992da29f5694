"""The code-line counter behind the broker toolkit's lines gate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.source_lines import code_lines, count

ROOT = Path(__file__).resolve().parents[2]


def test_docstrings_comments_and_blanks_are_not_code() -> None:
    source = '''"""Module docstring
over two lines."""

# a comment
import os  # trailing comment counts as code


def f(
    a: int,
) -> int:
    """One line."""
    text = """a string that is
    not a docstring"""
    return a + len(text) + len(os.sep)
'''
    # import, def (3 lines: the signature spans them), text (2 lines), return
    assert code_lines(source) == 1 + 3 + 2 + 1


def test_counts_per_folder_and_leaves_out_excluded_and_generated() -> None:
    folders = count("src/openalgo_proxy/brokers", {"mstock"})
    assert "mstock" not in folders and folders["angel"] > 0 and folders["(shared)"] > 0
    with_upstox = count("src/openalgo_proxy/brokers", set())
    assert with_upstox["upstox"] > 0  # its feed_v3_pb2.py (generated) is skipped, its own modules are not


def test_command_prints_a_total() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.source_lines", "src/openalgo_proxy/brokers", "--exclude", "dhan"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert out.splitlines()[-1].startswith("total") and "dhan" not in out
