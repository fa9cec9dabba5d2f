"""Time-ordered identifiers (UUIDv7, RFC 9562), monotonic within a process.

Python 3.11 has no uuid.uuid7. Time-ordered ids keep B-tree inserts at the
right edge of the index, make ids a usable tie-breaker in keyset cursors, and
give the outbox its publishing order. Ids made in the same millisecond are
ordered by a counter in `rand_a` (RFC 9562 section 6.2, method 1), so two
events staged one after the other always compare in that order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_COUNTER_BITS = 12
_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _next_timestamp_and_counter() -> tuple[int, int]:
    global _last_ms, _counter  # noqa: PLW0603 - the generator's state is process-wide
    with _lock:
        unix_ms = time.time_ns() // 1_000_000
        if unix_ms > _last_ms:
            _last_ms = unix_ms
            # Start low in the range so many ids fit in one millisecond.
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _counter += 1
            if _counter >= 1 << _COUNTER_BITS:
                _last_ms += 1  # borrow from the next millisecond rather than repeat
                _counter = 0
        return _last_ms, _counter


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, a 12-bit counter, 62 random bits."""
    unix_ms, counter = _next_timestamp_and_counter()
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64  # rand_a used as the counter
    value |= 0b10 << 62  # variant
    value |= rand_b
    return uuid.UUID(int=value)


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID in value, or None when it is not one (ids from clients are untrusted)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
