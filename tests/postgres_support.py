"""A private PostgreSQL cluster for tests: initdb in a temp dir, pg_ctl on a free loopback port, stopped by PID.

CI runs as root and PostgreSQL refuses to run as root, so the cluster runs as the `postgres` system
user through `runuser` (installed with the server package); as any other user it runs as that user.
The binaries come from `make postgres` (Debian's package). Tests skip, saying why, only when they
cannot be found.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support import free_port

PASSWORD = "pg-test-secret-9f1c"


def postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _as_cluster_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def private_cluster() -> Iterator[str]:
    """Yields the URL of a superuser (password auth) on a fresh cluster; the cluster is gone afterwards."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries not found: run `make postgres` (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="oap-pg-"))
    data, sockets, pwfile = folder / "data", folder / "sock", folder / "pw"
    sockets.mkdir()
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (folder, sockets, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    pid = 0
    try:
        subprocess.run(
            _as_cluster_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            _as_cluster_user(
                [
                    str(bindir / "pg_ctl"),
                    *("-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60"),
                    *("-o", f"-p {port} -h 127.0.0.1 -k {sockets}"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}"
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # fast shutdown
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{url}/{name}"
