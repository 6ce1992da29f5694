"""Client authentication against OpenAlgo's API keys (the proxy side of drop-in mode).

A grant's identity is the OpenAlgo username, so the auth reply's `user_id` is that username and
order updates reach the sockets of their owner only. Lookup is one HMAC plus a dict probe; the
index is rebuilt off the loop by ApiKeyWatcher, and the proxy's sweep closes sockets whose key left
the index (`reload_keys` / `still_valid`) with 4401.
"""

from __future__ import annotations

import dataclasses

from openalgo_proxy.config import AuthSettings
from openalgo_proxy.openalgo.keys import ApiKeyIndex
from openalgo_proxy.proxy.auth import MAX_CREDENTIAL, Authenticator, AuthFailed, Grant


class OpenAlgoAuthenticator(Authenticator):
    def __init__(self, settings: AuthSettings, index: ApiKeyIndex) -> None:
        super().__init__(settings.model_copy(update={"mode": "none"}))
        self.settings = settings
        self.required = True
        self.index = index
        self._seen_generation = index.generation

    def authenticate(self, credential: str | None) -> Grant:
        if not credential:
            raise AuthFailed("no API key given")
        if len(credential) > MAX_CREDENTIAL:
            raise AuthFailed("credential too long")
        owner = self.index.lookup(credential)
        if owner is None:
            raise AuthFailed("invalid API key")
        grant = self._grant(owner.user_id, self.settings.default_role, key_digest=owner.digest)
        # an OpenAlgo user sees the order updates of its own account (OpenAlgo's rule), and no other
        return dataclasses.replace(grant, order_accounts=(owner.user_id,))

    def reload_keys(self) -> bool:
        changed = self.index.generation != self._seen_generation
        self._seen_generation = self.index.generation
        return changed

    def still_valid(self, grant: Grant) -> bool:
        return grant.key_digest is None or self.index.contains(grant.key_digest)
