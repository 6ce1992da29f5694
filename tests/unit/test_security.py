"""Security building blocks without sockets: key store, token verifier, limits, origins, config."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from openalgo_proxy import cli
from openalgo_proxy.config import AuthSettings, LimitSettings, Settings, load_settings
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.auth import Authenticator, AuthFailed
from openalgo_proxy.proxy.keystore import KeyStore
from openalgo_proxy.proxy.limits import Guard, IdentityCounter, TokenBucket
from openalgo_proxy.proxy.origin import origin_allowed
from openalgo_proxy.proxy.tokens import TokenRejected, TokenVerifier

SECRET = "k" * 64


# -- key store ------------------------------------------------------------------------------------
def test_key_store_keeps_only_keyed_hashes_private_and_looks_up(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "cfg" / "keys.json")
    key, record = store.add("desk", "default")
    assert key.startswith("oap_") and len(key) > 40
    text = (tmp_path / "cfg" / "keys.json").read_text()
    assert key not in text and key[4:] not in text and record.digest in text
    for path in (store.path, store.secret_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fresh = KeyStore(store.path)
    fresh.load()
    found = fresh.lookup(key)
    assert found is not None and (found.name, found.role) == ("desk", "default")
    assert fresh.lookup(key + "x") is None and fresh.lookup("") is None
    # without the secret the file proves nothing: another secret finds nothing
    other = KeyStore(store.path, secret=b"x" * 32)
    other.load()
    assert other.lookup(key) is None


def test_key_store_names_are_unique_and_revocation_is_seen_by_reload(tmp_path: Path) -> None:
    writer = KeyStore(tmp_path / "keys.json")
    key, _ = writer.add("a", "default")
    with pytest.raises(ConfigError, match="exists"):
        writer.add("a", "default")
    reader = KeyStore(tmp_path / "keys.json")
    reader.load()
    assert not reader.reload_if_changed()
    digest = reader.digest(key)
    assert digest is not None and reader.contains(digest)
    writer.revoke("a")
    assert reader.reload_if_changed() and not reader.contains(digest)
    with pytest.raises(ConfigError, match="no key named"):
        writer.revoke("a")


def test_a_corrupt_key_store_keeps_the_keys_loaded_before(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.add("a", "default")
    reader = KeyStore(tmp_path / "keys.json")
    reader.load()
    (tmp_path / "keys.json").write_text("{broken")
    assert not reader.reload_if_changed()
    assert reader.lookup(key) is not None


def test_a_store_without_its_secret_refuses_new_keys_and_old_ones(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.add("a", "default")
    store.secret_path.unlink()
    orphan = KeyStore(tmp_path / "keys.json")
    orphan.load()
    assert orphan.secret_missing() and orphan.lookup(key) is None
    with pytest.raises(ConfigError, match="secret is missing"):
        orphan.add("b", "default")
    assert not orphan.secret_path.exists()


def test_authenticator_api_key_mode(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.add("bot", "ghost")  # a role the proxy does not configure
    good, _ = store.add("desk", "default")
    auth = Authenticator(
        AuthSettings.model_validate({"mode": "api_key", "keys_file": str(store.path), "api_keys": ["c" * 32]})
    )
    assert auth.authenticate(good).identity == "key:desk"
    assert auth.authenticate("c" * 32).identity == "key:config-1"
    for bad, reason in ((None, "no API key"), ("", "no API key"), ("nope", "invalid"), ("x" * 9000, "too long")):
        with pytest.raises(AuthFailed, match=reason):
            auth.authenticate(bad)
    with pytest.raises(AuthFailed, match="not configured"):
        auth.authenticate(key)


def test_grant_forbids_by_exchange_and_mode() -> None:
    settings = AuthSettings.model_validate({"roles": {"default": {"exchanges": ["nse"], "modes": [1, 2]}}})
    grant = Authenticator(settings).anonymous()
    assert grant.forbidden("NSE", Mode.LTP) is None and grant.forbidden("NSE", Mode.QUOTE) is None
    assert "exchange BSE" in (grant.forbidden("BSE", Mode.LTP) or "")
    assert "mode 3" in (grant.forbidden("NSE", Mode.DEPTH) or "")


# -- tokens -------------------------------------------------------------------------------------------
def _verifier(**extra: Any) -> TokenVerifier:
    return TokenVerifier(AuthSettings.model_validate({"mode": "jwt", "jwt_secret": SECRET, **extra}))


def _token(key: str = SECRET, alg: str = "HS256", **claims: Any) -> str:
    body = {"sub": "alice", "exp": int(time.time()) + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg)


def test_token_verifier_accepts_and_maps_claims() -> None:
    token = _verifier(jwt_audience="a", jwt_issuer="i").verify(_token(aud="a", iss="i", role="viewer"))
    assert (token.identity, token.role) == ("alice", "viewer") and token.expires_at > time.time()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": None}, "missing required claim 'exp'"),
        ({"sub": None}, "missing required claim 'sub'"),
        ({"exp": int(time.time()) - 10}, "token expired"),
        ({"nbf": int(time.time()) + 86400}, "token not yet valid"),  # computed at collection: keep far off
        ({"aud": "b"}, "wrong audience"),
        ({"iss": "j"}, "wrong issuer"),
        ({"aud": None}, "missing required claim 'aud'"),
        ({"iss": None}, "missing required claim 'iss'"),
        ({"sub": 5}, "malformed token"),
        ({"exp": str(int(time.time()) + 3600)}, "claim 'exp' must be a number of seconds since the epoch"),
        ({"nbf": "0"}, "claim 'nbf' must be a number of seconds since the epoch"),
        ({"iat": str(int(time.time()))}, "claim 'iat' must be a number of seconds since the epoch"),
        ({"exp": 1e12}, "token lifetime over the allowed 2592000 s"),
        ({"exp": int(time.time()) + 31 * 86400}, "token lifetime over the allowed 2592000 s"),
    ],
)
def test_token_verifier_rejections(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenRejected) as rejected:
        _verifier(jwt_audience="a", jwt_issuer="i").verify(_token(**{"aud": "a", "iss": "i", **claims}))
    assert rejected.value.reason == reason


def test_token_verifier_leeway_and_unconfigured_audience() -> None:
    exp = int(time.time()) - 5
    accepted = _verifier(jwt_leeway=30).verify(_token(exp=exp))
    assert accepted.identity == "alice" and accepted.expires_at == exp + 30
    with pytest.raises(TokenRejected, match="wrong audience"):  # a token for some other service
        _verifier().verify(_token(aud="other-service"))


def test_token_verifier_takes_a_fractional_exp_and_a_configured_lifetime() -> None:
    exp = time.time() + 3600.5
    assert _verifier().verify(_token(exp=exp)).expires_at == exp
    with pytest.raises(TokenRejected, match="over the allowed 600 s"):
        _verifier(jwt_max_lifetime=600).verify(_token(exp=exp))


def test_token_verifier_algorithms() -> None:
    with pytest.raises(TokenRejected, match="algorithm not allowed"):
        _verifier().verify(_token(alg="HS512"))
    with pytest.raises(TokenRejected, match="bad signature"):
        _verifier().verify(_token(key="z" * 64))
    assert _verifier(jwt_algorithms=["HS512"]).verify(_token(alg="HS512")).identity == "alice"


# -- config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"jwt_algorithms": ["none"]}, "unsupported JWT algorithm"),
        ({"jwt_algorithms": []}, "at least one"),
        ({"mode": "jwt"}, "need jwt_secret"),
        ({"mode": "jwt", "jwt_secret": "short"}, "at least 32 bytes"),
        ({"mode": "jwt", "jwt_secret": "s" * 40, "jwt_algorithms": ["HS512"]}, "at least 64 bytes"),
        ({"mode": "jwt", "jwt_algorithms": ["RS256"]}, "jwt_public_key_file"),
        (
            {"mode": "jwt", "jwt_algorithms": ["HS256", "RS256"], "jwt_secret": SECRET, "jwt_public_key_file": "k"},
            "do not mix",
        ),
        ({"default_role": "admin"}, "not one of the roles"),
        ({"roles": {"default": {"modes": [4]}}}, "roles.default.modes"),
        ({"mode": "oauth"}, "auth.mode"),
    ],
)
def test_bad_security_config_is_refused(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(overrides={"auth": auth})


def test_tls_needs_both_files_and_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match="both cert_file and key_file"):
        load_settings(overrides={"tls": {"cert_file": "c.pem"}})
    with pytest.raises(ConfigError, match=r"limits\.max_clients"):
        load_settings(overrides={"limits": {"max_clients": 3}})


def test_secrets_are_masked_in_config_show() -> None:
    settings = load_settings(overrides={"auth": {"mode": "jwt", "jwt_secret": SECRET, "keys_secret": "q" * 40}})
    from openalgo_proxy.config import show

    shown = show(settings)
    assert SECRET not in shown and "q" * 40 not in shown
    assert json.loads(shown)["limits"] == LimitSettings.model_validate({}).model_dump()


# -- limits -----------------------------------------------------------------------------------------------
def test_token_bucket_bursts_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never above the burst


def test_guard_violation_budget_refills_over_a_minute() -> None:
    guard = Guard(LimitSettings.model_validate({"max_protocol_errors": 2}), now=0.0)
    assert guard.violation(0.0) and guard.violation(0.0) and not guard.violation(0.0)
    assert guard.violation(31.0)  # 2 per 60 s: one back after 30 s


def test_identity_counter() -> None:
    counter = IdentityCounter()
    assert counter.acquire("a", 2) and counter.acquire("a", 2) and not counter.acquire("a", 2)
    counter.release("a")
    assert counter.count("a") == 1 and counter.acquire("a", 2)


# -- origins and listeners ---------------------------------------------------------------------------------
def test_origin_allowlist() -> None:
    assert origin_allowed(None, "h:1", [], tls=False)  # not a browser
    assert origin_allowed("http://h:1", "h:1", [], tls=False)  # same origin
    assert not origin_allowed("http://h:1", "h:1", [], tls=True)  # scheme differs
    assert origin_allowed("https://h:1", "h:1", [], tls=True)
    assert not origin_allowed("https://evil.example", "h:1", [], tls=False)
    assert origin_allowed("https://App.example/", "h:1", ["https://app.example"], tls=False)
    assert origin_allowed("https://evil.example", "h:1", ["*"], tls=False)
    assert not origin_allowed("null", None, [], tls=False)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("", False), ("::", False), ("10.0.0.5", False), ("proxy.example", False)],
)  # fmt: skip
def test_auth_none_only_on_loopback(host: str, loopback: bool) -> None:
    settings = Settings(proxy={"host": host})  # type: ignore[arg-type]
    assert cli.is_loopback(host) is loopback
    if loopback:
        cli._refuse_open_auth_none(settings)
    else:
        with pytest.raises(ConfigError, match="only allowed on loopback"):
            cli._refuse_open_auth_none(settings)
        cli._refuse_open_auth_none(Settings(proxy={"host": host}, auth={"mode": "api_key"}))  # type: ignore[arg-type]


# -- the keys command --------------------------------------------------------------------------------------
def test_keys_add_list_revoke_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(
        f'[auth]\nmode = "api_key"\nkeys_file = "{tmp_path / "keys.json"}"\n'
        "[auth.roles.default]\n[auth.roles.viewer]\nmodes = [1]\n"
    )
    monkeypatch.setenv("OPENALGO_PROXY_CONFIG", str(config))
    assert cli.main(["keys", "add", "--name", "desk", "--role", "viewer"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("oap_") and "shown once" in err and key not in err
    assert cli.main(["keys", "add", "--name", "desk"]) == 2  # names are unique
    assert "exists" in capsys.readouterr().err
    assert cli.main(["keys", "add", "--name", "x", "--role", "admin"]) == 2
    assert "not configured" in capsys.readouterr().err
    assert cli.main(["keys", "add", "--name", "bad name!"]) == 2
    capsys.readouterr()
    assert cli.main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("desk\tviewer\t") and key not in listed
    settings = load_settings(str(config))
    assert Authenticator(settings.auth).authenticate(key).role_name == "viewer"
    assert cli.main(["keys", "revoke", "desk"]) == 0
    capsys.readouterr()
    with pytest.raises(AuthFailed):
        Authenticator(settings.auth).authenticate(key)
    assert cli.main(["keys", "revoke", "desk"]) == 2
