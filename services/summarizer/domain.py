"""When a thread needs a new summary, and how long callers should wait for one.

Pure rules, no I/O: the event handler asks `trigger_for` what an event means
for its post, and the growth rule decides whether a few new comments are worth
another model call. Summaries cost money, so the rules lean towards fewer:
a burst of comments is debounced into one job, and a thread that grew by a
handful of comments keeps its summary until the growth is significant.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from agora.events.v1 import events_pb2

from common.ids import parse_uuid

# What a worker usually needs to fetch a thread and have it summarised; added
# to the wait for a pending summary so clients do not poll too early.
EXPECTED_GENERATION = timedelta(seconds=2)
# A failed job (posts or comments down) is tried again after this, doubling.
FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=10)
ERROR_TEXT_MAX = 500


class TriggerKind(Enum):
    # The post is new: its first summary, unless a reader already asked for one
    # (a job or summary then exists and was made from the post as created).
    FIRST = "first"
    # The post changed: summarise (debounced).
    SCHEDULE = "schedule"
    # A comment arrived: summarise if the thread grew enough since its summary.
    GROWTH = "growth"
    # A comment changed or went away: only a thread already summarised (or
    # about to be) needs a new one, since the old one may quote it.
    REFRESH = "refresh"
    # The post is gone: drop its summary and any pending job.
    FORGET = "forget"


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: TriggerKind
    post_id: uuid.UUID
    # For GROWTH: the thread's comment count after the event.
    comment_count: int = 0


@dataclass(frozen=True, slots=True)
class GrowthRule:
    """Re-summarise after at least `min_new` comments and `ratio` of the summarised count."""

    min_new: int
    ratio: float

    def grown_enough(self, summarized: int, now: int) -> bool:
        needed = max(self.min_new, math.ceil(self.ratio * summarized))
        return now - summarized >= needed


# What each event means; moderation depends on the action taken.
_BY_KIND: dict[str, TriggerKind] = {
    "post_created": TriggerKind.FIRST,
    "post_updated": TriggerKind.SCHEDULE,
    "post_deleted": TriggerKind.FORGET,
    "comment_created": TriggerKind.GROWTH,
    "comment_updated": TriggerKind.REFRESH,
    "comment_deleted": TriggerKind.REFRESH,
}
# Lock, pin and the like change nothing a summary reads.
_BY_ACTION: dict[str, dict[str, TriggerKind]] = {
    "post_moderated": {"remove": TriggerKind.FORGET, "restore": TriggerKind.SCHEDULE},
    "comment_moderated": {"remove": TriggerKind.REFRESH, "restore": TriggerKind.REFRESH},
}


def trigger_for(event: events_pb2.Event) -> Trigger | None:
    """What an event means for its post's summary; None when nothing."""
    kind = event.WhichOneof("payload")
    if kind is None:
        return None
    payload = getattr(event, kind)
    trigger_kind = _BY_KIND.get(kind) or _BY_ACTION.get(kind, {}).get(
        getattr(payload, "action", "")
    )
    if trigger_kind is None:
        return None
    post_id = parse_uuid(payload.post_id)
    if post_id is None:
        return None
    count = payload.post_comment_count if kind == "comment_created" else 0
    return Trigger(trigger_kind, post_id, max(count, 0))


def retry_after_seconds(due_at: datetime, now: datetime) -> int:
    """Whole seconds a client should wait before asking for a pending summary again."""
    wait = max(due_at - now, timedelta(0)) + EXPECTED_GENERATION
    return max(1, math.ceil(wait.total_seconds()))


def retry_delay(attempts: int) -> timedelta:
    """Backoff of a job whose making failed `attempts` times in a row."""
    # The exponent is capped before multiplying: a long outage must not overflow timedelta.
    delay: timedelta = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 16))
    return min(delay, LONGEST_RETRY)


def error_text(error: BaseException) -> str:
    """A failure as stored on its job: type and message, bounded."""
    return f"{type(error).__name__}: {error}"[:ERROR_TEXT_MAX]
