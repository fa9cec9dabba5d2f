"""One circuit breaker for every outbound dependency (LLM providers, upstream gRPC services).

A breaker watches the outcomes of calls to one dependency over a rolling time
window. While the dependency is failing, callers skip it at once instead of
each waiting out its own timeout and piling more load on something that is
already down:

    closed ──(≥ minimum_calls in window and failures/calls ≥ failure_ratio)──▶ open
    open ──(open_seconds later)──▶ half_open
    half_open ──(the one trial call succeeds)──▶ closed (window cleared)
    half_open ──(the trial call fails)──▶ open (for another open_seconds)

Half-open lets exactly one trial call through at a time; everyone else is still
refused until its outcome is known. A trial whose outcome never arrives (the
caller crashed without `release()`) lapses after `open_seconds`, so a lost
caller cannot wedge the breaker in half-open forever.

Time comes from an injected monotonic clock, so tests drive it without
sleeping. The breaker is meant for one event loop (or one thread): its methods
never await, so no lock is needed. Outcomes that arrive while it is open belong
to calls that started before it opened and change nothing. In half-open any
outcome decides, since the trial is the only call let through.

The state is exported as `agora_circuit_breaker_state{breaker}` (0 closed,
1 open, 2 half-open) and every change counted in
`agora_circuit_breaker_transitions_total{breaker,to}`. Open -> half-open is a
matter of time, so it is noticed (and exported) at the next look at the
breaker, not at the exact instant.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter, Gauge

T = TypeVar("T")

log = logging.getLogger("agora.breaker")

BREAKER_STATE = Gauge(
    "agora_circuit_breaker_state",
    "State of a circuit breaker: 0 closed, 1 open, 2 half-open.",
    ["breaker"],
)
BREAKER_TRANSITIONS = Counter(
    "agora_circuit_breaker_transitions_total",
    "Circuit breaker state changes, by breaker and the state entered.",
    ["breaker", "to"],
)


class BreakerState(enum.IntEnum):
    """The values are those of the state gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class CircuitOpen(Exception):
    """Raised by `CircuitBreaker.call` when the breaker refuses the call; nothing was sent."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open; retry in {retry_after:.1f} s")
        self.name = name
        self.retry_after = retry_after


def _every_exception(_: BaseException) -> bool:
    return True


class CircuitBreaker:
    """Closed, open or half-open over a rolling window of call outcomes (see the module doc)."""

    def __init__(
        self,
        name: str,
        *,
        failure_ratio: float = 0.5,
        window_seconds: float = 60.0,
        minimum_calls: int = 4,
        open_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if window_seconds <= 0 or open_seconds <= 0:
            raise ValueError("window_seconds and open_seconds must be positive")
        if minimum_calls < 1:
            raise ValueError("minimum_calls must be at least 1")
        self.name = name
        self.failure_ratio = failure_ratio
        self.window_seconds = window_seconds
        self.minimum_calls = minimum_calls
        self.open_seconds = open_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        # (time, failed) of each outcome in the window, oldest first.
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None
        BREAKER_STATE.labels(name).set(BreakerState.CLOSED)

    # -- reading ---------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        self._advance(self._clock())
        return self._state

    def retry_after(self) -> float:
        """Seconds until a call may be let through: 0 unless open (callers round up as needed).

        Half-open answers 0 even while the trial is in flight: its outcome is one
        call away, and a Retry-After of a whole open period would be a lie.
        """
        now = self._clock()
        self._advance(now)
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.open_seconds - now)
        return 0.0

    # -- deciding --------------------------------------------------------------

    def allow(self) -> bool:
        """Whether to make a call now; True in half-open hands out the single trial.

        Every True must be followed by `record_success`, `record_failure` or
        `release`, or a half-open breaker keeps refusing until the trial lapses.
        """
        now = self._clock()
        self._advance(now)
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN or self._trial_started_at is not None:
            return False
        self._trial_started_at = now
        return True

    def release(self) -> None:
        """Give back a permission from `allow()` without an outcome (the call was cancelled)."""
        self._trial_started_at = None

    def record_success(self) -> None:
        now = self._clock()
        self._advance(now)
        if self._state is BreakerState.HALF_OPEN:
            self._close()
        elif self._state is BreakerState.CLOSED:
            self._add_outcome(now, failed=False)

    def record_failure(self) -> None:
        now = self._clock()
        self._advance(now)
        if self._state is BreakerState.HALF_OPEN:
            self._open(now)
        elif self._state is BreakerState.CLOSED:
            self._add_outcome(now, failed=True)
            calls = len(self._outcomes)
            if calls >= self.minimum_calls and self._failures / calls >= self.failure_ratio:
                self._open(now)

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        is_failure: Callable[[BaseException], bool] = _every_exception,
    ) -> T:
        """Run `operation` under the breaker, recording its outcome; `CircuitOpen` if refused.

        `is_failure` says which exceptions count against the dependency: an
        upstream answering NOT_FOUND is healthy, so a caller passes a predicate
        that counts only outages. A cancelled call records nothing.
        """
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after())
        try:
            result = await operation()
        except asyncio.CancelledError:
            self.release()
            raise
        except Exception as error:
            if is_failure(error):
                self.record_failure()
            else:
                self.record_success()
            raise
        self.record_success()
        return result

    # -- transitions -----------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Apply what the passing of time alone changes: open -> half-open, lapsed trials."""
        if self._state is BreakerState.OPEN and now >= self._opened_at + self.open_seconds:
            self._trial_started_at = None
            self._enter(BreakerState.HALF_OPEN)
        elif (
            self._state is BreakerState.HALF_OPEN
            and self._trial_started_at is not None
            and now - self._trial_started_at >= self.open_seconds
        ):
            log.warning("circuit breaker trial call lapsed", extra={"breaker": self.name})
            self._trial_started_at = None

    def _add_outcome(self, now: float, *, failed: bool) -> None:
        self._outcomes.append((now, failed))
        self._failures += failed
        horizon = now - self.window_seconds
        while self._outcomes and self._outcomes[0][0] <= horizon:
            _, old_failed = self._outcomes.popleft()
            self._failures -= old_failed

    def _open(self, now: float) -> None:
        calls, failures = len(self._outcomes), self._failures
        self._opened_at = now
        self._trial_started_at = None
        self._clear_window()
        self._enter(BreakerState.OPEN, calls=calls, failures=failures)

    def _close(self) -> None:
        self._trial_started_at = None
        self._clear_window()
        self._enter(BreakerState.CLOSED)

    def _clear_window(self) -> None:
        self._outcomes.clear()
        self._failures = 0

    def _enter(self, state: BreakerState, **details: int) -> None:
        previous, self._state = self._state, state
        BREAKER_STATE.labels(self.name).set(state)
        BREAKER_TRANSITIONS.labels(self.name, state.label).inc()
        log.log(
            logging.WARNING if state is BreakerState.OPEN else logging.INFO,
            "circuit breaker %s",
            state.label,
            extra={"breaker": self.name, "from_state": previous.label, **details},
        )
