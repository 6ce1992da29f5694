"""JWT verification: an explicit algorithm allowlist, `exp` required, `aud`/`iss` when configured,
and a previous key accepted during rotation.

The key is chosen by the algorithm family of the token's header (HS* -> shared secrets, others ->
public keys), and the config refuses to mix the families, so a public key can never be used as an
HMAC secret (algorithm confusion). `alg: none` is never in the allowlist.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from openalgo_proxy.config import AuthSettings
from openalgo_proxy.errors import ConfigError, ProxyError


class TokenRejected(ProxyError):
    """A token that does not prove an identity; `reason` is short and safe to show and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    identity: str
    role: str | None
    expires_at: float


_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "missing required claim"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "key does not fit the algorithm"),
]


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            if isinstance(exc, jwt.MissingRequiredClaimError):
                return f"missing required claim {exc.claim!r}"
            return reason
    return "malformed token"


def _check_dates(claims: dict[str, Any], now: float, max_lifetime: float) -> None:
    """`exp`, `nbf` and `iat` are JSON numbers (RFC 7519 NumericDate; PyJWT also takes numeric
    strings), and `exp` is at most `max_lifetime` seconds ahead (a 1e12 `exp` never expires)."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None and name != "exp":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TokenRejected(f"claim {name!r} must be a number of seconds since the epoch")
    if claims["exp"] > now + max_lifetime:
        raise TokenRejected(f"token lifetime over the allowed {max_lifetime:.0f} s")


def _public_key(path: str) -> PublicKeyTypes:
    try:
        return serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read JWT public key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"JWT public key {path} is not a PEM public key") from exc


class TokenVerifier:
    def __init__(self, auth: AuthSettings) -> None:
        self.algorithms = list(auth.jwt_algorithms)
        self.audience = auth.jwt_audience
        self.issuer = auth.jwt_issuer
        self.identity_claim = auth.jwt_identity_claim
        self.role_claim = auth.jwt_role_claim
        self.leeway = auth.jwt_leeway
        self.max_lifetime = auth.jwt_max_lifetime
        self._secrets: list[Any] = [
            s.get_secret_value().encode() for s in (auth.jwt_secret, auth.jwt_previous_secret) if s is not None
        ]
        self._public: list[Any] = [
            _public_key(p) for p in (auth.jwt_public_key_file, auth.jwt_previous_public_key_file) if p
        ]
        required = ["exp", self.identity_claim]
        if self.audience is not None:
            required.append("aud")
        if self.issuer is not None:
            required.append("iss")
        self._options: dict[str, Any] = {"require": required}

    def verify(self, token: str) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenRejected("algorithm not allowed")
        keys = self._secrets if alg.startswith("HS") else self._public
        if not keys:
            raise TokenRejected("algorithm not allowed")
        claims: dict[str, Any] | None = None
        failure: jwt.PyJWTError | None = None
        for key in keys:  # the current key, then the previous one during a rotation
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options=self._options,  # type: ignore[arg-type]
                )
                break
            except jwt.InvalidSignatureError as exc:
                failure = exc
            except jwt.PyJWTError as exc:
                raise TokenRejected(_reason(exc)) from exc
        if claims is None:
            raise TokenRejected(_reason(failure) if failure is not None else "bad signature")
        _check_dates(claims, time.time(), self.max_lifetime)
        identity = claims.get(self.identity_claim)
        if not isinstance(identity, str) or not identity or len(identity) > 200:
            raise TokenRejected(f"claim {self.identity_claim!r} must be a non-empty string")
        role = claims.get(self.role_claim)
        if role is not None and not isinstance(role, str):
            raise TokenRejected(f"claim {self.role_claim!r} must be a string")
        # the connection closes when the token would stop verifying: exp plus the allowed clock skew
        return VerifiedToken(identity, role, float(claims["exp"]) + self.leeway)
