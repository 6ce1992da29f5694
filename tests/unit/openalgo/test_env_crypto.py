"""OpenAlgo's .env (dotenv semantics) and secret schemes, checked against independent computations."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet

from openalgo_proxy.errors import ConfigError
from openalgo_proxy.openalgo import crypto
from openalgo_proxy.openalgo.env import load_env

PEPPER = "a" * 20 + "-pepper-" + "b" * 20


def test_env_follows_dotenv_quoting_and_defaults(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\n"
        f"API_KEY_PEPPER = '{PEPPER}'\n"
        'FERNET_SALT="00112233445566778899aabbccddeeff"\n'
        "export BROKER_API_KEY=abc:::def\n"
        "WEBSOCKET_PORT = '9876'\n"
        "ZMQ_PORT=6001  # trailing comment\n"
        "HOST_SERVER='https://trade.example.com'\n",
        encoding="utf-8",
    )
    env = load_env(tmp_path, environ={"ZMQ_HOST": "127.0.0.2", "WEBSOCKET_PORT": "1"})
    assert env.pepper == PEPPER and env.fernet_salt == "00112233445566778899aabbccddeeff"
    assert env.broker_api_key == "abc:::def"
    assert (env.websocket_host, env.websocket_port) == ("127.0.0.1", 9876)  # the file beats the environment
    assert env.zmq_endpoint == "tcp://127.0.0.2:6001"  # missing in the file: the environment
    assert env.database_url == "sqlite:///db/openalgo.db"
    assert env.stats_file == tmp_path.resolve() / "log" / "ws_proxy_stats.json"
    assert PEPPER not in repr(env) and "0011223344" not in repr(env)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("API_KEY_PEPPER=short\n", "API_KEY_PEPPER"),
        (f"API_KEY_PEPPER={PEPPER}\nZMQ_PORT=many\n", "ZMQ_PORT"),
        (f"API_KEY_PEPPER={PEPPER}\nWEBSOCKET_PORT=70000\n", "WEBSOCKET_PORT"),
    ],
)
def test_env_errors_say_what_is_wrong(tmp_path: Path, body: str, problem: str) -> None:
    (tmp_path / ".env").write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_env(tmp_path, environ={})


def test_env_missing_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_env(tmp_path / "nope", environ={})
    if not Path("/tmp/.env").exists():
        with pytest.raises(ConfigError, match=r"no OpenAlgo \.env"):
            load_env(tmp_path, environ={})


def _reference_fernet(pepper: str, salt: bytes) -> Fernet:
    raw = hashlib.pbkdf2_hmac("sha256", pepper.encode(), salt, 100_000, 32)
    return Fernet(base64.urlsafe_b64encode(raw))


@pytest.mark.parametrize(
    ("fernet_salt", "salt"),
    [
        ("00112233445566778899aabbccddeeff", bytes.fromhex("00112233445566778899aabbccddeeff")),
        ("", b"openalgo_static_salt"),
        ("abcdef", b"openalgo_static_salt"),  # too short: legacy
        ("zz" * 16, b"openalgo_static_salt"),  # not hex: legacy
    ],
)
def test_fernet_key_matches_pbkdf2_reference(fernet_salt: str, salt: bytes) -> None:
    ours = crypto.fernet_for(PEPPER, fernet_salt)
    reference = _reference_fernet(PEPPER, salt)
    token = reference.encrypt(b"broker-token")
    assert crypto.decrypt(ours, token.decode()) == "broker-token"
    assert reference.decrypt(crypto.encrypt(ours, "x").encode()) == b"x"


def test_decrypt_empty_and_wrong_key() -> None:
    good = crypto.fernet_for(PEPPER, "")
    other = crypto.fernet_for(PEPPER + "x", "")
    assert crypto.decrypt(good, "") == "" and crypto.encrypt(good, "") == ""
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(other, crypto.encrypt(good, "secret"))
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(good, "not a token")


def test_argon2id_phc_strings_as_openalgo_stores_them() -> None:
    key = "ab" * 32
    phc = crypto.hash_key(key, PEPPER)
    assert phc.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PasswordHasher().verify(phc, key + PEPPER)  # the reference library agrees
    assert crypto.verify_key_hash(phc, key, PEPPER)
    assert not crypto.verify_key_hash(phc, key, PEPPER + "x")
    assert not crypto.verify_key_hash("not a phc string", key, PEPPER)
