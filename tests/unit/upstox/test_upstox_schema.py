"""Our Feed V3 schema equals the official SDK's, field for field (numbers, types, labels, oneofs, enums).

The SDK's generated module (upstox-python-sdk, pinned in requirements/nodeps.txt) is the authority;
only the package name differs (ours is our own, so both load in one process).
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor

from openalgo_proxy.brokers.upstox import feed_v3_pb2 as ours

sdk = pytest.importorskip("upstox_client.feeder.proto.MarketDataFeedV3_pb2")


def _type_name(full_name: str | None, package: str) -> str | None:
    return full_name.removeprefix(package + ".") if full_name else None


def shape(message: Descriptor, package: str) -> dict[str, Any]:
    fields = {}
    for f in message.fields:
        sub = f.message_type.full_name if f.message_type is not None else None
        enum = f.enum_type.full_name if f.enum_type is not None else None
        fields[f.number] = (
            f.name,
            f.type,
            f.is_repeated,
            _type_name(sub, package),
            _type_name(enum, package),
            f.containing_oneof.name if f.containing_oneof else None,
        )
    nested = {n.name: shape(n, package) for n in message.nested_types}
    return {"fields": fields, "nested": nested, "map": message.GetOptions().map_entry}


def enum_shape(enum: EnumDescriptor) -> dict[str, int]:
    return {v.name: v.number for v in enum.values}


def test_every_message_matches_the_sdk() -> None:
    theirs = sdk.DESCRIPTOR
    mine = ours.DESCRIPTOR
    assert set(mine.message_types_by_name) == set(theirs.message_types_by_name)
    for name, message in theirs.message_types_by_name.items():
        assert shape(mine.message_types_by_name[name], mine.package) == shape(message, theirs.package), name


def test_every_enum_matches_the_sdk() -> None:
    theirs = sdk.DESCRIPTOR
    mine = ours.DESCRIPTOR
    assert set(mine.enum_types_by_name) == set(theirs.enum_types_by_name)
    for name, enum in theirs.enum_types_by_name.items():
        assert enum_shape(mine.enum_types_by_name[name]) == enum_shape(enum), name
    assert mine.syntax == theirs.syntax == "proto3" if hasattr(mine, "syntax") else True
