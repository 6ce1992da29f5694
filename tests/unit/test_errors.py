"""Codes and exceptions are named once: every code has its reason, every error one root."""

from __future__ import annotations

import pytest

from openalgo_proxy import errors
from openalgo_proxy.client.errors import ClientError
from openalgo_proxy.client.messages import ProtocolViolation, decode
from openalgo_proxy.proxy.auth import AuthFailed


def test_every_close_code_has_a_reason() -> None:
    assert all(code.reason for code in errors.CloseCode)
    assert errors.CloseCode.KEEPALIVE_TIMEOUT == 1011 and errors.CloseCode.ABNORMAL == 1006
    assert len({int(code) for code in errors.CloseCode}) == len(errors.CloseCode)  # no aliases


def test_every_error_code_has_a_meaning() -> None:
    assert all(code.meaning for code in errors.ErrorCode)


@pytest.mark.parametrize(
    "kind",
    [AuthFailed, ProtocolViolation, ClientError, errors.CodecError, errors.ControlMessageError, errors.ConfigError],
)
def test_errors_share_one_root(kind: type[Exception]) -> None:
    assert issubclass(kind, errors.ProxyError)


def test_codec_errors_are_value_errors() -> None:
    with pytest.raises(errors.CodecError):
        decode(b"[1, 2]")
    assert issubclass(ProtocolViolation, ValueError) and issubclass(errors.ControlMessageError, ValueError)
