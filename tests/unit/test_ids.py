from __future__ import annotations

import time

from common.ids import parse_uuid, uuid7


def test_uuid7_has_version_and_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == "specified in RFC 4122"


def test_uuid7_orders_by_creation_time() -> None:
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    assert first < second
    assert str(first) < str(second)


def test_uuid7_is_unique_and_ordered_within_a_millisecond() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    assert ids == sorted(ids)
    assert all(value.version == 7 for value in ids)


def test_parse_uuid_rejects_garbage() -> None:
    assert parse_uuid("not-a-uuid") is None
    assert parse_uuid("' OR 1=1 --") is None
    value = uuid7()
    assert parse_uuid(str(value)) == value
