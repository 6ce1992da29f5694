"""`python -m bench.source_lines [DIR] [--exclude NAME ...] [--rev REV]`: code lines per folder of a package.

A code line holds a token that is not a comment, a docstring or layout (blank lines and line breaks
inside brackets are not counted twice). Generated protobuf modules (`*_pb2.py`) are skipped. With
`--rev` the tree is read from that git revision instead of the working tree, so a before/after
comparison needs no checkout. The broker toolkit's gate (brokers/ code lines go down) is measured with it:

    python -m bench.source_lines src/openalgo_proxy/brokers --exclude mstock dhan noren upstox openalgo replay
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import PurePosixPath

_LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def code_lines(source: str) -> int:
    """The number of lines of `source` that carry code (not blank, comment-only or docstring)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, _DOCUMENTED) and node.body:
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and first.end_lineno is not None:
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _LAYOUT:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def _sources(root: str, rev: str | None) -> Iterator[tuple[PurePosixPath, str]]:
    """(path relative to `root`, text) of every .py file under `root`, from the working tree or a revision."""
    listing = ["git", "ls-tree", "-r", "--name-only", rev, "--", root] if rev else ["git", "ls-files", "--", root]
    names = subprocess.run(listing, check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if not name.endswith(".py") or name.endswith("_pb2.py"):
            continue
        if rev:
            text = subprocess.run(["git", "show", f"{rev}:{name}"], check=True, capture_output=True, text=True).stdout
        else:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        yield PurePosixPath(name).relative_to(PurePosixPath(root)), text


def count(root: str, exclude: set[str], rev: str | None = None) -> dict[str, int]:
    """Code lines per top-level folder of `root` ("(shared)" for the files directly in it)."""
    folders: dict[str, int] = {}
    for path, text in _sources(root, rev):
        folder = path.parts[0] if len(path.parts) > 1 else "(shared)"
        if folder not in exclude:
            folders[folder] = folders.get(folder, 0) + code_lines(text)
    return dict(sorted(folders.items()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.source_lines", description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default="src/openalgo_proxy/brokers", help="package folder (repo-relative)")
    parser.add_argument("--exclude", nargs="*", default=[], help="top-level folders to leave out")
    parser.add_argument("--rev", help="read the tree at this git revision")
    args = parser.parse_args()
    folders = count(args.root.rstrip("/"), set(args.exclude), args.rev)
    rows = [f"{folder:<12} {lines:>6}" for folder, lines in folders.items()]
    sys.stdout.write("\n".join([*rows, f"{'total':<12} {sum(folders.values()):>6}"]) + "\n")


if __name__ == "__main__":
    main()
