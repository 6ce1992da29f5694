"""A broker's settings: its `[feed.NAME]` section, and its credentials from the environment only.

A broker folder's `settings.py` subclasses `BrokerSettings`: fields are the section's non-secret
options, `credentials` declares what it reads from the environment (secrets never come from a
config file: a secret key in the section is refused), `environment` names the variables that may
also set a non-secret option (documented before the sections existed). `read_credentials` is the
one reader of credential variables: it raises ConfigError naming every missing one. A credential
declared `token_file` may instead be a file named by `NAME_FILE`, re-read by `read_token` at every
use, so a daily login job can replace the token without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from openalgo_proxy.errors import BrokerAuthError, ConfigError


@dataclass(frozen=True, slots=True)
class Credential:
    """One value a broker reads from the environment variable `env`."""

    env: str
    required: bool = True
    token_file: bool = False  # `<env>_FILE` may name a file holding it instead (re-read at every use)
    key: str = ""  # a non-secret value (a client id), also accepted as this key of the section; "" = a secret


class BrokerSettings(BaseModel):
    """A broker's `[feed.NAME]` section (options every broker has); subclassed in the broker's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: what the broker reads from the environment (`read_credentials`)
    credentials: ClassVar[tuple[Credential, ...]] = ()
    #: non-secret options that an environment variable sets when the section does not: field -> variable
    environment: ClassVar[Mapping[str, str]] = {}

    exchanges: tuple[str, ...] = Field(
        (), description="client exchanges this account serves (empty = all its account has; [feed] exchanges wins)"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_and_environment(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        for credential in cls.credentials:
            given = [k for k in (credential.env.lower(), credential.env.lower().split("_", 1)[-1]) if k in data]
            if given and not credential.key:
                raise ValueError(f"{given[0]} is a secret: set the environment variable {credential.env} instead")
        env: Mapping[str, str] = (info.context or {}).get("env", os.environ)
        from_env = {field: env[name] for field, name in cls.environment.items() if env.get(name, "").strip()}
        return {**from_env, **data}

    @field_validator("exchanges", mode="before")
    @classmethod
    def _exchange_list(cls, value: Any) -> Any:
        names = value.split(",") if isinstance(value, str) else value  # a comma list from the environment
        return (
            tuple(str(n).strip().upper() for n in names if str(n).strip()) if isinstance(names, list | tuple) else names
        )

    @classmethod
    def load(cls: type[Section], env: Mapping[str, str] | None = None) -> Section:
        """The section's defaults, with the options the environment sets; ConfigError when one is invalid."""
        try:
            return cls.model_validate({}, context={"env": os.environ if env is None else env})
        except ValidationError as exc:
            names = sorted({cls.environment.get(str(err["loc"][0]), str(err["loc"][0])) for err in exc.errors()})
            raise ConfigError(f"invalid {' and '.join(names)}: {exc.errors()[0]['msg']}") from None

    def read_credentials(self, broker: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """See `read_credentials`; a non-secret credential given in this section wins."""
        given = {c.env: str(getattr(self, c.key)) for c in self.credentials if c.key and getattr(self, c.key)}
        return read_credentials(self.credentials, broker, {**(os.environ if env is None else env), **given})


Section = TypeVar("Section", bound=BrokerSettings)


def read_credentials(
    credentials: Iterable[Credential], broker: str, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Variable -> value for each credential set (and `NAME_FILE` -> path for a token file in use).

    ConfigError names every required one missing, and a token file that is not a readable file."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    missing: list[str] = []
    for credential in credentials:
        name = credential.env
        path = env.get(f"{name}_FILE", "").strip() if credential.token_file else ""
        value = env.get(name, "").strip()
        if path:
            if not Path(path).is_file():
                raise ConfigError(f"{name}_FILE {path} is not a readable file")
            found[f"{name}_FILE"] = path
        elif value:
            found[name] = value
        elif credential.required:
            missing.append(f"{name} (or {name}_FILE)" if credential.token_file else name)
    if missing:
        raise ConfigError(f"the {broker} feed needs {' and '.join(missing)} in the environment")
    return found


def read_token(name: str, value: str, path: str | None) -> str:
    """The token: the first line of the file at `path` (read now) when there is one, else `value`."""
    if path is None:
        return value
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BrokerAuthError(f"cannot read {name}_FILE {path}: {exc.strerror}") from None
    if not text:
        raise BrokerAuthError(f"{name}_FILE {path} is empty")
    return text.splitlines()[0].strip()


def secret(name: str, broker: str) -> str:
    """A required variable."""
    return read_credentials([Credential(name)], broker)[name]


def token_source(name: str, broker: str) -> Callable[[], str]:
    """A daily token from `NAME_FILE` or `NAME`, both looked up again at every call."""

    def read() -> str:
        found = read_credentials([Credential(name, token_file=True)], broker)
        return read_token(name, found.get(name, ""), found.get(f"{name}_FILE"))

    return read
