"""An AngelSession fed by a CredentialProvider (OpenAlgo's stored session): it never logs in.

The JWT, feed token and client code come from the provider; `BROKER_API_KEY` is the SmartAPI key.
A refused session waits in `provider.refresh` for a newer one instead of retrying the dead token.
"""

from __future__ import annotations

from openalgo_proxy.brokers.angel.login import AngelCredentials, AngelSession, SessionTokens, strip_bearer
from openalgo_proxy.brokers.credentials import BrokerCredentials, CredentialProvider


def _angel(credentials: BrokerCredentials) -> AngelCredentials:
    return AngelCredentials(
        api_key=credentials.api_key,
        client_code=credentials.client_code,
        jwt_token=strip_bearer(credentials.access_token),
        feed_token=credentials.feed_token,
    )


class ProvidedAngelSession(AngelSession):
    def __init__(self, provider: CredentialProvider, api_url: str | None = None) -> None:
        self.provider = provider
        super().__init__(_angel(provider.current()), api_url)

    def __repr__(self) -> str:
        return f"ProvidedAngelSession(client_code={self.credentials.client_code!r})"

    def _adopt(self, credentials: BrokerCredentials) -> SessionTokens:
        self.credentials = angel = _angel(credentials)
        self._tokens = SessionTokens(angel.jwt_token, angel.feed_token, generation=credentials.generation)
        return self._tokens

    async def tokens(self) -> SessionTokens:
        current = self.provider.current()
        if self._tokens is None or self._tokens.generation != current.generation:
            return self._adopt(current)
        return self._tokens

    async def invalidate(self, generation: int) -> None:
        if self._tokens is None or self._tokens.generation == generation:
            self._adopt(await self.provider.refresh(generation))
