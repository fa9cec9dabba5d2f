"""Timestamps and ids between Python and protobuf: the one fast way services and gateway use.

protobuf's own helpers are general and slow for pages of hundreds of items:
`Timestamp.FromDatetime` goes through `utctimetuple()` and `calendar.timegm`
(about 14 µs a call) and `ToJsonString` through float arithmetic and checks
(about 8 µs); a 500-comment page called them a thousand times on each side,
which the profiles showed as a fifth to a third of the work. These give the
same values and the same text with plain integer arithmetic (a tenth of the
cost); tests/unit/test_wire.py holds them equal to protobuf's own over a range
of instants.

`str(uuid)` is already as fast as Python makes it; what a page wastes is
converting the same ids again and again (one post id and community id for every
comment, an author per reply). `IdText` converts each distinct id once per answer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - protobuf reads naive datetimes as UTC
_SECONDS_PER_DAY = 86_400
_NANOS_PER_MICRO = 1_000
_NANOS_PER_MILLI = 1_000_000
_NANOS_PER_SECOND = 1_000_000_000


def set_timestamp(stamp: Timestamp, moment: datetime) -> None:
    """stamp := moment, as `stamp.FromDatetime(moment)` would (a naive moment is UTC)."""
    delta = moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)
    stamp.seconds = delta.days * _SECONDS_PER_DAY + delta.seconds
    stamp.nanos = delta.microseconds * _NANOS_PER_MICRO


def timestamp(moment: datetime) -> Timestamp:
    """A new Timestamp of moment (for message constructors)."""
    stamp = Timestamp()
    set_timestamp(stamp, moment)
    return stamp


def timestamp_json(stamp: Timestamp) -> str:
    """RFC 3339 in UTC, exactly `stamp.ToJsonString()`: 0, 3, 6 or 9 fractional digits."""
    nanos = stamp.nanos
    if not 0 <= nanos < _NANOS_PER_SECOND:
        raise ValueError(f"Timestamp is not valid: nanos {nanos} out of range")
    text = (_NAIVE_EPOCH + timedelta(seconds=stamp.seconds)).isoformat()
    if not nanos:
        return text + "Z"
    if not nanos % _NANOS_PER_MILLI:
        return f"{text}.{nanos // _NANOS_PER_MILLI:03d}Z"
    if not nanos % _NANOS_PER_MICRO:
        return f"{text}.{nanos // _NANOS_PER_MICRO:06d}Z"
    return f"{text}.{nanos:09d}Z"


class IdText:
    """`str(id)` for the ids of one answer, each distinct id converted once.

    Meant to live as long as one response: it keeps every id it saw.
    """

    __slots__ = ("_texts",)

    def __init__(self) -> None:
        self._texts: dict[uuid.UUID, str] = {}

    def __call__(self, value: uuid.UUID) -> str:
        text = self._texts.get(value)
        if text is None:
            text = self._texts[value] = str(value)
        return text
