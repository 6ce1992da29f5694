"""Admission without sockets: pending handshakes, open counts, identity caps, budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from openalgo_proxy.config import AuthSettings, LimitSettings, RoleSettings
from openalgo_proxy.proxy.admission import Admission
from openalgo_proxy.proxy.auth import AuthFailed, Grant


def _admission(tmp_path: Path, **limits: int) -> Admission:
    auth = AuthSettings.model_validate(
        {"mode": "api_key", "api_keys": ["k" * 24], "keys_file": str(tmp_path / "keys.json")}
    )
    return Admission.from_settings(LimitSettings.model_validate(limits), 2, auth)


def test_pending_handshakes_are_capped(tmp_path: Path) -> None:
    admission = _admission(tmp_path, max_pending_handshakes=2)
    assert admission.begin_handshake("a") and admission.begin_handshake("b")
    assert not admission.begin_handshake("c") and admission.pending == 2
    admission.end_handshake("a")
    assert admission.begin_handshake("c")


def test_pending_handshakes_are_capped_per_address(tmp_path: Path) -> None:
    admission = _admission(tmp_path, max_pending_handshakes=10, max_pending_handshakes_per_address=2)
    assert admission.begin_handshake("10.0.0.2") and admission.begin_handshake("10.0.0.2")
    assert not admission.begin_handshake("10.0.0.2")  # that address is full ...
    assert admission.begin_handshake("10.0.0.3")  # ... the others are not
    admission.end_handshake("10.0.0.2")
    assert admission.begin_handshake("10.0.0.2")
    for address in ("10.0.0.2", "10.0.0.2", "10.0.0.3"):
        admission.end_handshake(address)
    assert admission.pending == 0 and not admission.pending_by_address


def test_open_connections_past_the_cap_are_refused_but_counted_until_closed(tmp_path: Path) -> None:
    admission = _admission(tmp_path)
    assert admission.open() and admission.open()
    assert not admission.open() and admission.open_count == 3
    admission.closed()
    assert admission.open_count == 2


def test_identity_caps_use_the_role_first_then_the_limit(tmp_path: Path) -> None:
    admission = _admission(tmp_path, max_connections_per_identity=2)
    grant = admission.authorize("k" * 24)
    assert grant.identity == "key:config-1"
    assert admission.claim(grant, None) is None and admission.claim(grant, None) is None
    assert admission.claim(grant, None) == "at most 2 concurrent connections for this identity"
    assert admission.claim(grant, "key:config-1") is None  # already holds this identity's slot
    narrow = Grant("key:solo", "solo", RoleSettings.model_validate({"max_connections": 1}))
    assert admission.claim(narrow, "key:config-1") is None  # moves its slot to the new identity
    assert admission.identities.count("key:config-1") == 1 and admission.identities.count("key:solo") == 1
    assert admission.claim(narrow, None) is not None
    admission.release("key:solo")
    assert admission.identities.count("key:solo") == 0
    with pytest.raises(AuthFailed):
        admission.authorize("wrong")


def test_without_auth_nothing_is_claimed(tmp_path: Path) -> None:
    admission = Admission.from_settings(LimitSettings.model_validate({}), 10, AuthSettings.model_validate({}))
    grant = admission.anonymous()
    assert not admission.auth_required and admission.claim(grant, None) is None
    assert admission.identities.count("anonymous") == 0


def test_each_session_gets_its_own_budget(tmp_path: Path) -> None:
    admission = _admission(tmp_path, command_burst=1)
    one, two = admission.guard(0.0), admission.guard(0.0)
    assert one.allow_command(0.0) and not one.allow_command(0.0)
    assert two.allow_command(0.0)
