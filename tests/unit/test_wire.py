"""common.wire gives exactly what protobuf's own Timestamp helpers give, faster."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from common.wire import IdText, set_timestamp, timestamp, timestamp_json


def _instants() -> list[datetime]:
    rnd = random.Random(20261203)
    fixed = [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 12, 3, 7, 40, 1, 500_000, tzinfo=UTC),
        datetime(2026, 12, 3, 7, 40, 1, 123_000, tzinfo=UTC),
        datetime(2026, 12, 3, 7, 40, 1, 123_456, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 3, 29, 2, 30, 0, 7, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(2026, 12, 3, 7, 40, 1, 42),  # noqa: DTZ001 - naive is read as UTC, as protobuf does
    ]
    span = 200 * 365 * 86_400 * 1_000_000  # two centuries of microseconds
    drawn = [
        datetime(1900, 1, 1, tzinfo=UTC) + timedelta(microseconds=rnd.randrange(span))
        for _ in range(2000)
    ]
    return fixed + drawn


def test_timestamps_equal_protobufs_own() -> None:
    for moment in _instants():
        expected = Timestamp()
        expected.FromDatetime(moment)
        mine = Timestamp()
        set_timestamp(mine, moment)
        assert (mine.seconds, mine.nanos) == (expected.seconds, expected.nanos), moment
        assert timestamp(moment) == expected
        assert timestamp_json(expected) == expected.ToJsonString(), moment


@pytest.mark.parametrize("nanos", [0, 1, 999, 1_000, 1_000_000, 123_456_789, 999_999_999])
def test_json_uses_0_3_6_or_9_digits_like_protobuf(nanos: int) -> None:
    stamp = Timestamp(seconds=1_764_747_601, nanos=nanos)
    assert timestamp_json(stamp) == stamp.ToJsonString()


def test_json_refuses_invalid_nanos() -> None:
    with pytest.raises(ValueError, match="nanos"):
        timestamp_json(Timestamp(seconds=0, nanos=-1))


def test_id_text_converts_each_id_once_and_like_str() -> None:
    first = uuid.uuid4()
    same_value = uuid.UUID(str(first))
    text = IdText()
    assert text(first) == str(first)
    assert text(same_value) is text(first)
    other = uuid.uuid4()
    assert text(other) == str(other)
