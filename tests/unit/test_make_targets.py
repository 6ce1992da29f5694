"""What `make run` and `make test` install (dry runs into a fresh venv path), and the summary of
tests that a machine without the system tools did not run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.skip_summary import summary

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make here")


def dry_run(target: str, venv: Path) -> str:
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(REPO), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_make_run_installs_the_runtime_only(tmp_path: Path) -> None:
    commands = dry_run("run", tmp_path / "venv")
    assert "requirements/runtime.txt" in commands
    assert "requirements/dev.txt" not in commands  # no browsers' driver, mypy, SDKs, pandas
    assert commands.strip().endswith("openalgo-proxy run")


def test_make_test_installs_the_toolchain_on_top_of_the_runtime(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    commands = dry_run("test", venv)
    assert commands.index("requirements/runtime.txt") < commands.index("requirements/dev.txt")
    assert "-m pytest" in commands
    # after `make run` (runtime stamp present and fresh) `make test` adds the toolchain only
    venv.mkdir()
    (venv / "bin").mkdir()
    (venv / ".runtime").touch()
    after_run = dry_run("test", venv)
    assert "requirements/runtime.txt" not in after_run and "requirements/dev.txt" in after_run


def test_summary_groups_skips_by_the_command_that_enables_them() -> None:
    reasons = [
        "Skipped: /usr/bin/chromium not installed (make browser installs Debian's chromium)",
        "Skipped: /usr/bin/chromium not installed (make browser installs Debian's chromium)",
        "Skipped: haproxy is not installed here (make ops-tools installs it)",
        "Skipped: promtool is not installed here (make ops-tools installs it)",
        "Skipped: needs a live broker account",  # no command enables it: not in this summary
    ]
    assert summary(reasons) == [
        "2 tests not run: /usr/bin/chromium not installed. Enable: sudo make browser, then make test",
        "2 tests not run: haproxy is not installed here; promtool is not installed here."
        " Enable: sudo make ops-tools, then make test",
    ]
    assert summary(["Skipped: needs a live broker account"]) == []
