"""A rate as operators write it: `100/minute`, `10/hour`, `5/30s`, or `off`.

Limits are settings, so they must be readable in an environment file and
impossible to misread: a count, a slash and a window. The window is a unit
(`second`, `minute`, `hour`, `day`) or a number with a unit letter (`30s`,
`15m`, `2h`, `1d`), so tests can use short windows without a second syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_UNITS = {
    "s": 1,
    "second": 1,
    "m": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")
_OFF = frozenset({"off", "none", "0"})
# A window longer than a day would need a sorted set that outlives any client's memory of it.
MAX_WINDOW_SECONDS = 86400


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` requests in any `window_seconds` long stretch of time."""

    limit: int
    window_seconds: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.window_seconds}s"


def parse_rate(value: Any) -> Rate | None:
    """A Rate from its text (None for `off`); Rate objects and None pass through.

    Raises ValueError with the accepted forms, so a typo in an environment
    variable stops the gateway at start-up instead of silently disabling a limit.
    """
    if value is None or isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise TypeError("a rate is text like '100/minute'")
    text = value.strip().lower()
    if text in _OFF:
        return None
    match = _SPEC.fullmatch(text)
    if match is None or match.group(3) not in _UNITS:
        raise ValueError(
            f"{value!r} is not a rate: write '<count>/<window>' with a window of second, "
            "minute, hour or day (or e.g. 30s, 15m), or 'off'"
        )
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    window = multiple * _UNITS[unit]
    if count < 1 or not 1 <= window <= MAX_WINDOW_SECONDS:
        raise ValueError(f"{value!r}: the count must be at least 1 and the window 1 s to 1 day")
    return Rate(count, window)
