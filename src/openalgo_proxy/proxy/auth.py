"""Authentication and authorization: credentials -> a Grant (identity, role, expiry); a Grant
decides which subscriptions are allowed.

Modes: ``none`` (everyone is ``anonymous`` with the default role), ``api_key`` (hashed keys from the
key store plus any plain keys in config), ``jwt`` (see tokens.py). The credential may arrive as
``api_key`` or ``token`` in the authenticate message, or as ``Authorization: Bearer`` at the handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from openalgo_proxy.config import AuthSettings, RoleSettings
from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.keystore import KeyStore, default_keys_file
from openalgo_proxy.proxy.tokens import TokenRejected, TokenVerifier

log = logging.getLogger(__name__)

MAX_CREDENTIAL = 8192


class AuthFailed(ProxyError):
    """Credentials that prove nothing; `reason` is safe to show to the client and to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Grant:
    identity: str  # "key:NAME", "jwt:SUB" or "anonymous"; what logs and per-identity caps use
    role_name: str
    role: RoleSettings
    expires_at: float | None = None  # wall-clock epoch seconds (JWT exp)
    key_digest: str | None = None  # key store entry, for revocation
    order_accounts: tuple[str, ...] = ()  # accounts whose order updates it may receive ("*" = all)

    def forbidden(self, exchange: str, mode: Mode) -> str | None:
        """Why this grant may not subscribe to (exchange, mode), or None when it may."""
        role = self.role
        if role.exchanges is not None and exchange not in role.exchanges:
            return f"role {self.role_name!r} may not subscribe to exchange {exchange}"
        if int(mode) not in role.modes:
            return f"role {self.role_name!r} may not subscribe in mode {int(mode)}"
        return None


class Authenticator:
    def __init__(self, auth: AuthSettings) -> None:
        self.settings = auth
        self.mode = auth.mode
        self.required = auth.mode != "none"
        self.store: KeyStore | None = None
        self.verifier: TokenVerifier | None = None
        # plain keys from config, compared by a keyed hash so the lookup is O(1) and constant-time
        self._config_salt = secrets.token_bytes(32)
        self._config_keys: dict[bytes, str] = {}
        if auth.mode == "api_key":
            secret = auth.keys_secret.get_secret_value().encode() if auth.keys_secret is not None else None
            path = Path(auth.keys_file).expanduser() if auth.keys_file else default_keys_file()
            self.store = KeyStore(path, secret)
            self.store.load()
            for index, key in enumerate(auth.api_keys, 1):
                self._config_keys[self._config_digest(key.get_secret_value())] = f"config-{index}"
            stored = len(self.store.records())
            log.info("api_key auth: %d key(s) in %s, %d in config", stored, path, len(auth.api_keys))
            if self.store.secret_missing():
                log.error("key store %s has keys but no secret: every stored key is refused", path)
            if not stored and not auth.api_keys:
                log.warning("api_key auth has no keys yet: add one with `openalgo-proxy keys add --name NAME`")
        elif auth.mode == "jwt":
            self.verifier = TokenVerifier(auth)
            log.info("jwt auth: algorithms %s", ",".join(auth.jwt_algorithms))

    def _config_digest(self, key: str) -> bytes:
        return hmac.new(self._config_salt, key.encode(), hashlib.sha256).digest()

    def role(self, name: str) -> RoleSettings | None:
        return self.settings.roles.get(name)

    def anonymous(self) -> Grant:
        name = self.settings.default_role
        return Grant("anonymous", name, self.settings.roles[name])

    def authenticate(self, credential: str | None) -> Grant:
        """The grant these credentials prove; AuthFailed otherwise."""
        if not self.required:
            return self.anonymous()
        if not credential:
            raise AuthFailed("no API key or token given")
        if len(credential) > MAX_CREDENTIAL:
            raise AuthFailed("credential too long")
        if self.verifier is not None:
            try:
                token = self.verifier.verify(credential)
            except TokenRejected as exc:
                raise AuthFailed(exc.reason) from exc
            return self._grant(f"jwt:{token.identity}", token.role or self.settings.default_role, token.expires_at)
        name = self._config_keys.get(self._config_digest(credential))
        if name is not None:
            return self._grant(f"key:{name}", self.settings.default_role)
        record = self.store.lookup(credential) if self.store is not None else None
        if record is None:
            raise AuthFailed("invalid API key")
        return self._grant(f"key:{record.name}", record.role, key_digest=record.digest)

    def _grant(
        self, identity: str, role_name: str, expires_at: float | None = None, key_digest: str | None = None
    ) -> Grant:
        role = self.role(role_name)
        if role is None:
            log.warning("identity %s has role %r, which is not configured", identity, role_name)
            raise AuthFailed(f"role {role_name!r} is not configured on this proxy")
        return Grant(identity, role_name, role, expires_at, key_digest, tuple(role.orders))

    def reload_keys(self) -> bool:
        """Pick up `keys add/revoke` from other processes; True when the store changed."""
        return self.store is not None and self.store.reload_if_changed()

    def still_valid(self, grant: Grant) -> bool:
        if grant.key_digest is None or self.store is None:
            return True
        return self.store.contains(grant.key_digest)
