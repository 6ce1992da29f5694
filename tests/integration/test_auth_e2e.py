"""Authentication end to end (DESIGN section 8): hashed API keys and JWTs, every rejection path gets
its documented code, and the server keeps serving a bystander throughout."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from openalgo_proxy.proxy.keystore import KeyStore
from tests.integration.security_support import (
    PREVIOUS_SECRET,
    SECRET,
    bystander,
    close_code,
    still_served,
    token,
    unsigned_token,
)
from tests.support import client, running_system, wait_for


def _store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.json")


def _api_key_auth(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"mode": "api_key", "keys_file": str(tmp_path / "keys.json"), **extra}


async def test_api_key_rejections_and_revocation(tmp_path: Path) -> None:
    store = _store(tmp_path)
    good, _ = store.add("desk", "default")
    doomed, _ = store.add("intern", "default")
    async with (
        running_system(auth=_api_key_auth(tmp_path, deadline=3)) as system,
        bystander(system.url, {"api_key": good}) as other,
        client(system.url) as c,
    ):
        # missing, empty, wrong: AUTHENTICATION_ERROR, the connection stays open
        for request in ({}, {"api_key": ""}, {"api_key": "oap_wrong"}, {"api_key": good + "x"}):
            err = await c.reply({"action": "authenticate", **request, "request_id": 1})
            assert err["code"] == "AUTHENTICATION_ERROR" and err["request_id"] == 1, err
        err = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE"})
        assert err["code"] == "NOT_AUTHENTICATED"
        await still_served(other)

        # revoked before connecting: refused
        async with client(system.url) as victim:
            ok = await victim.reply({"action": "authenticate", "api_key": doomed})
            assert ok["status"] == "success" and ok["user_id"] == "key:intern"
            await victim.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
            # revoked while connected (another process, e.g. `keys revoke`, rewrites the file): closed 4401
            KeyStore(tmp_path / "keys.json").revoke("intern")
            assert await close_code(victim, within=5) == 4401
            assert victim.ws.close_reason == "API key revoked"
        async with client(system.url) as again:
            err = await again.reply({"action": "authenticate", "api_key": doomed})
            assert err["code"] == "AUTHENTICATION_ERROR"
        await still_served(other)


async def test_keys_added_while_running_work_without_restart(tmp_path: Path) -> None:
    _store(tmp_path).add("first", "default")
    async with running_system(auth=_api_key_auth(tmp_path)) as system:
        key, _ = KeyStore(tmp_path / "keys.json").add("later", "default")
        async with client(system.url) as c:

            async def accepted() -> bool:
                reply = await c.reply({"action": "authenticate", "api_key": key})
                return bool(reply["status"] == "success")

            deadline = time.monotonic() + 5
            while not await accepted():
                assert time.monotonic() < deadline, "new key not picked up"
                await asyncio.sleep(0.1)


async def test_bearer_header_api_key_and_bad_bearer_refused_at_handshake(tmp_path: Path) -> None:
    key, _ = _store(tmp_path).add("svc", "default")
    async with running_system(auth=_api_key_auth(tmp_path)) as system:
        async with client(system.url, additional_headers={"Authorization": f"Bearer {key}"}) as c:
            reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with client(system.url, additional_headers={"Authorization": "Bearer oap_nope"}):
                pass
        assert refused.value.response.status_code == 401


def _jwt_auth(**extra: Any) -> dict[str, Any]:
    return {"mode": "jwt", "jwt_secret": SECRET, **extra}


async def test_jwt_hs256_every_rejection_path() -> None:
    auth = _jwt_auth(jwt_audience="openalgo-proxy", jwt_issuer="https://idp.example", deadline=5)
    claims = {"aud": "openalgo-proxy", "iss": "https://idp.example"}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "bad signature": token("x" * 64, **claims),
        "algorithm not allowed": unsigned_token(**claims),
        "algorithm not allowed (HS384)": token(SECRET, "HS384", **claims),
        "algorithm not allowed (RS256)": token(rsa_key, "RS256", **claims),
        "token expired": token(ttl=-5, **claims),
        "token not yet valid": token(nbf=int(time.time()) + 120, **claims),
        "wrong audience": token(aud="someone-else", iss=claims["iss"]),
        "wrong issuer": token(aud=claims["aud"], iss="https://evil.example"),
        "missing required claim 'aud'": token(iss=claims["iss"]),
        "missing required claim 'exp'": jwt.encode({"sub": "alice", **claims}, SECRET, algorithm="HS256"),
        "old key (not configured)": token(PREVIOUS_SECRET, **claims),
        "malformed token": "not.a.jwt",
    }
    async with running_system(auth=auth) as system:
        async with bystander(system.url, {"token": token(**claims)}) as other, client(system.url) as c:
            for case, bad in cases.items():
                err = await c.reply({"action": "authenticate", "token": bad})
                assert err["type"] == "error" and err["code"] == "AUTHENTICATION_ERROR", (case, err)
                expected = case.split(" (")[0]
                if expected != "old key":
                    assert expected in err["message"], (case, err)
                # the bystander is served after each rejection
                pong = await other.reply({"action": "ping"})
                assert pong["type"] == "pong"
            await still_served(other)
        # the rejected ones never got a subscription in
        async with client(system.url) as c:
            ok = await c.reply({"action": "authenticate", "api_key": token(**claims)})  # the SDK's field works too
            assert ok["status"] == "success" and ok["user_id"] == "jwt:alice"


async def test_jwt_rotation_accepts_the_previous_key() -> None:
    auth = _jwt_auth(jwt_previous_secret=PREVIOUS_SECRET)
    async with running_system(auth=auth) as system:
        for key in (SECRET, PREVIOUS_SECRET):
            async with client(system.url) as c:
                ok = await c.reply({"action": "authenticate", "token": token(key)})
                assert ok["status"] == "success", ok
        async with client(system.url) as c:
            err = await c.reply({"action": "authenticate", "token": token("o" * 64)})
            assert err["code"] == "AUTHENTICATION_ERROR" and "bad signature" in err["message"]


@pytest.mark.parametrize("family", ["RS256", "ES256"])
async def test_jwt_public_key_algorithms_with_rotation(tmp_path: Path, family: str) -> None:
    def keypair() -> tuple[Any, Path]:
        private: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if family == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        path = tmp_path / f"{id(private)}.pem"
        path.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private, path

    current, current_pem = keypair()
    previous, previous_pem = keypair()
    stranger, _ = keypair()
    auth = {
        "mode": "jwt",
        "jwt_algorithms": [family],
        "jwt_public_key_file": str(current_pem),
        "jwt_previous_public_key_file": str(previous_pem),
    }
    async with running_system(auth=auth) as system:
        for private in (current, previous):
            async with client(system.url) as c:
                ok = await c.reply({"action": "authenticate", "token": token(private, family)})
                assert ok["status"] == "success", ok
        async with client(system.url) as c:
            err = await c.reply({"action": "authenticate", "token": token(stranger, family)})
            assert err["code"] == "AUTHENTICATION_ERROR" and "bad signature" in err["message"]
            # an HMAC token "signed" with the public key bytes: the classic algorithm confusion
            forged = jwt.api_jws.PyJWS().encode(b'{"sub":"mallory","exp":9999999999}', b"k" * 40, algorithm="HS256")
            err = await c.reply({"action": "authenticate", "token": forged})
            assert err["code"] == "AUTHENTICATION_ERROR" and "algorithm not allowed" in err["message"]


async def test_jwt_expiry_closes_the_connection_unless_reauthenticated() -> None:
    async with (
        running_system(auth=_jwt_auth()) as system,
        client(system.url) as renewing,
        client(system.url) as lapsing,
    ):
        for c in (renewing, lapsing):
            ok = await c.reply({"action": "authenticate", "token": token(ttl=2)})
            assert ok["status"] == "success"
        started = time.monotonic()
        ok = await renewing.reply({"action": "authenticate", "token": token(ttl=60)})
        assert ok["status"] == "success"
        assert await close_code(lapsing, within=5) == 4401
        assert lapsing.ws.close_reason == "token expired"
        assert time.monotonic() - started < 4
        # the renewed one is still served; a different identity cannot take over the connection
        err = await renewing.reply({"action": "authenticate", "token": token(sub="bob")})
        assert err["code"] == "AUTHENTICATION_ERROR"
        pong = await renewing.reply({"action": "ping"})
        assert pong["type"] == "pong"


async def test_jwt_bearer_header() -> None:
    async with running_system(auth=_jwt_auth()) as system:
        headers = {"Authorization": f"Bearer {token(sub='svc')}"}
        async with client(system.url, additional_headers=headers) as c:
            reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success"
            await c.market_data()
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with client(system.url, additional_headers={"Authorization": f"Bearer {token(ttl=-1)}"}):
                pass
        assert refused.value.response.status_code == 401
        await wait_for(lambda: not system.proxy.identities.count("jwt:svc"))


async def test_logs_never_show_keys_or_tokens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key, record = _store(tmp_path).add("desk", "default")
    async with running_system(auth=_api_key_auth(tmp_path)) as system:
        async with client(system.url, additional_headers={"Authorization": f"Bearer {key}"}) as c:
            await c.reply({"action": "authenticate", "api_key": key + "typo"})
        async with client(f"{system.url}/?api_key={key}") as c:
            await c.reply({"action": "authenticate", "api_key": key})
    good, bad = token(sub="carol"), token(ttl=-5, sub="carol")
    async with running_system(auth=_jwt_auth()) as system, client(system.url) as c:
        await c.reply({"action": "authenticate", "token": bad})
        await c.reply({"action": "authenticate", "token": good})
    # what the proxy logs (the test's own client library logs its side of the handshake at DEBUG)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "key:desk" in logged and "jwt:carol" in logged  # identities are logged ...
    for secret in (key, key[4:20], good, bad, good.split(".")[2], SECRET):
        assert secret not in logged  # ... credentials never
    assert record.digest not in logged
