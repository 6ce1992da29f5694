"""Bus security without a network: the private ipc:// directory (created 0700, refused when it is
not this user's private directory, a live endpoint never taken over), another uid locked out, the
CURVE key folder and its CLI, the [bus] config section."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from openalgo_proxy import bus_ipc
from openalgo_proxy.bus_curve import BusKeys
from openalgo_proxy.cli import main
from openalgo_proxy.config import load_settings
from openalgo_proxy.errors import ConfigError

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An XDG_RUNTIME_DIR that other users may traverse (as /tmp is), so only the private
    directory inside it stands between them and the bus."""
    path = Path(tempfile.mkdtemp(prefix="oap-runtime-", dir="/tmp"))
    path.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_default_bus_is_ipc_in_a_private_directory_created_0700(runtime_dir: Path) -> None:
    endpoint = bus_ipc.default_endpoint()
    assert endpoint == f"ipc://{runtime_dir}/openalgo-proxy/bus"
    settings = load_settings(overrides={})
    assert settings.feed.bus == endpoint and settings.proxy.bus == [endpoint]
    bus_ipc.check_endpoint(endpoint, bind=True)
    st = os.lstat(runtime_dir / "openalgo-proxy")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


def test_without_xdg_runtime_dir_the_private_directory_is_per_user_in_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert bus_ipc.private_dir() == Path(f"/tmp/openalgo-proxy-{os.geteuid()}")


def test_a_directory_others_can_enter_is_refused(runtime_dir: Path) -> None:
    shared = runtime_dir / "openalgo-proxy"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigError, match=r"mode 755.*chmod 700"):
        bus_ipc.check_endpoint(bus_ipc.default_endpoint(), bind=False)


def test_a_symlink_in_place_of_the_directory_is_refused(runtime_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (runtime_dir / "openalgo-proxy").symlink_to(target)
    with pytest.raises(ConfigError, match="not a directory"):
        bus_ipc.check_endpoint(bus_ipc.default_endpoint(), bind=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_owned_by_another_user_is_refused(runtime_dir: Path) -> None:
    planted = runtime_dir / "openalgo-proxy"
    planted.mkdir(mode=0o700)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"belongs to uid {NOBODY}"):
        bus_ipc.check_endpoint(bus_ipc.default_endpoint(), bind=True)


def test_a_shared_directory_given_explicitly_is_refused_too(runtime_dir: Path) -> None:
    with pytest.raises(ConfigError, match="other users can reach the bus"):
        bus_ipc.check_endpoint(f"ipc://{runtime_dir}/bus", bind=True)  # runtime_dir itself is 0755


@pytest.mark.parametrize("endpoint", ["ipc://@openalgo", "ipc://relative/bus", "ipc://"])
def test_abstract_and_relative_ipc_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"abstract|absolute"):
        bus_ipc.check_endpoint(endpoint, bind=False)


def test_a_live_endpoint_is_never_taken_over_but_a_stale_one_is_reused(runtime_dir: Path) -> None:
    endpoint = bus_ipc.default_endpoint()
    bus_ipc.check_endpoint(endpoint, bind=True)
    path = runtime_dir / "openalgo-proxy" / "bus"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(ConfigError, match="is in use"):
            bus_ipc.check_endpoint(endpoint, bind=True)
        bus_ipc.check_endpoint(endpoint, bind=False)  # connecting to a live feed is the point
    assert path.exists()  # closed without unlinking: a feed that died
    bus_ipc.check_endpoint(endpoint, bind=True)


def _as_nobody(code: str) -> str:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", code], user=NOBODY, group=NOBODY, cwd="/", capture_output=True, timeout=10, check=False
    )
    return result.stdout.decode().strip() + result.stderr.decode().strip()[-300:]


@pytest.mark.skipif(os.geteuid() != 0 or not Path(SYSTEM_PYTHON).exists(), reason="needs root to run as another uid")
def test_another_user_can_neither_connect_to_nor_take_the_default_bus(runtime_dir: Path) -> None:
    endpoint = bus_ipc.default_endpoint()
    bus_ipc.check_endpoint(endpoint, bind=True)
    path = runtime_dir / "openalgo-proxy" / "bus"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        os.chmod(path, 0o777)  # even a socket anyone may write to is out of reach behind the directory
        probe = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect({str(path)!r}); print('connected')\n"
            "except PermissionError: print('denied')\n"
            "try:\n"
            f"    open({str(path.parent / 'forged')!r}, 'w'); print('created')\n"
            "except PermissionError: print('denied')\n"
        )
        assert _as_nobody(probe).split() == ["denied", "denied"]
        # the same probe from this user connects: the refusal above is the directory's doing
        shared = path.parent
        shared.chmod(0o711)
        try:
            assert _as_nobody(probe).split()[0] == "connected"
        finally:
            shared.chmod(0o700)


# -- CURVE keys ----------------------------------------------------------------------------------


def test_bus_keys_cli_creates_private_keys_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bus-keys"
    monkeypatch.setenv("OPENALGO_PROXY_BUS__KEYS_DIR", str(folder))
    assert main(["bus-keys", "init"]) == 0
    server_public = capsys.readouterr().out.strip()
    assert len(server_public) == 40
    assert main(["bus-keys", "add", "proxy1"]) == 0
    assert main(["bus-keys", "init"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert main(["bus-keys", "add", "../evil"]) == 2
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "clients").stat().st_mode) == 0o700
    for secret in (folder / "server.key_secret", folder / "clients" / "proxy1.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret-key" not in (folder / "server.key").read_text()
    keys = BusKeys(folder)
    assert keys.server_public().decode() == server_public == keys.server().public.decode()
    assert keys.client_names() == ["proxy1"]
    capsys.readouterr()
    assert main(["bus-keys", "list"]) == 0
    assert capsys.readouterr().out.split() == ["server", server_public, "client", "proxy1"]


def test_a_secret_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    keys = BusKeys(tmp_path / "k")
    keys.create_server()
    (tmp_path / "k" / "server.key_secret").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        keys.server()


def test_a_missing_key_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bus-keys"):
        BusKeys(tmp_path / "none").client("proxy")


def test_the_bus_section_is_typed_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(overrides={"bus": {"curve": True, "client_key": "p1"}})
    assert settings.bus.curve and settings.bus.client_key == "p1" and settings.bus.keys_dir is None
    with pytest.raises(ConfigError, match=r"bus\.curvy"):
        load_settings(overrides={"bus": {"curvy": True}})
