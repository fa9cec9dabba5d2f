"""The circuit breaker's state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from common.breaker import BreakerState, CircuitBreaker, CircuitOpen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    # A unique name per test, so metric samples are this test's own.
    return CircuitBreaker(
        f"test-{uuid.uuid4().hex[:8]}",
        failure_ratio=0.5,
        window_seconds=60,
        minimum_calls=4,
        open_seconds=30,
        clock=clock,
    )


def _state(breaker: CircuitBreaker) -> BreakerState:
    # A call, so mypy does not carry one assert's narrowing over to the next.
    return breaker.state


def _gauge(breaker: CircuitBreaker) -> float | None:
    return REGISTRY.get_sample_value("agora_circuit_breaker_state", {"breaker": breaker.name})


def _transitions(breaker: CircuitBreaker, to: str) -> float:
    value = REGISTRY.get_sample_value(
        "agora_circuit_breaker_transitions_total", {"breaker": breaker.name, "to": to}
    )
    return value or 0.0


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.minimum_calls):
        assert breaker.allow()
        breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN


def test_a_new_breaker_is_closed_and_lets_calls_through(breaker: CircuitBreaker) -> None:
    assert _state(breaker) is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    assert breaker.retry_after() == 0
    assert _gauge(breaker) == 0


def test_failures_below_the_minimum_number_of_calls_do_not_open_it(
    breaker: CircuitBreaker,
) -> None:
    for _ in range(3):
        breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED


def test_it_opens_at_the_failure_ratio_once_it_saw_enough_calls(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    breaker.record_success()
    breaker.record_success()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED  # 3 calls: below the minimum
    breaker.record_failure()  # 2 of 4 failed: 0.5 >= 0.5
    assert _state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(30)
    clock.advance(10)
    assert breaker.retry_after() == pytest.approx(20)
    assert _gauge(breaker) == 1
    assert _transitions(breaker, "open") == 1


def test_a_failure_ratio_below_the_threshold_keeps_it_closed(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_success()
    breaker.record_failure()  # 1 of 4
    for _ in range(10):
        breaker.record_success()
        breaker.record_failure()
        breaker.record_success()  # a steady third of calls failing
    assert _state(breaker) is BreakerState.CLOSED


def test_outcomes_older_than_the_window_no_longer_count(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.advance(61)
    breaker.record_failure()  # the three old failures have left the window
    assert _state(breaker) is BreakerState.CLOSED
    clock.advance(1)
    for _ in range(3):
        breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN


def test_after_the_open_period_it_is_half_open_and_lets_one_trial_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(29.9)
    assert _state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(0.1)
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert breaker.retry_after() == 0
    assert _gauge(breaker) == 2
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # everyone else waits for its outcome
    assert not breaker.allow()
    assert _transitions(breaker, "half_open") == 1


def test_a_successful_trial_closes_it_with_a_clean_window(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert _state(breaker) is BreakerState.CLOSED
    assert _gauge(breaker) == 0
    assert _transitions(breaker, "closed") == 1
    # The failures that opened it are gone: three new ones are below the minimum.
    for _ in range(3):
        breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED


def test_a_failed_trial_opens_it_for_another_open_period(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(30)
    assert not breaker.allow()
    clock.advance(30)
    assert breaker.allow()
    assert _transitions(breaker, "open") == 2


def test_a_trial_whose_outcome_never_comes_lapses(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(30)
    assert breaker.allow()
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()  # a new trial


def test_release_gives_the_trial_back(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.release()
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_late_outcomes_while_open_change_nothing(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    breaker.record_success()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(30)


async def test_call_records_outcomes_and_refuses_when_open(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    calls = 0

    async def ok() -> str:
        nonlocal calls
        calls += 1
        return "answer"

    async def fails() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    assert await breaker.call(ok) == "answer"
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call(fails)
    assert _state(breaker) is BreakerState.OPEN  # 3 of 4 failed
    clock.advance(5)
    with pytest.raises(CircuitOpen) as refused:
        await breaker.call(ok)
    assert refused.value.retry_after == pytest.approx(25)
    assert refused.value.name == breaker.name
    assert calls == 4  # the refused call never ran


async def test_call_counts_only_the_exceptions_the_caller_calls_failures(
    breaker: CircuitBreaker,
) -> None:
    async def not_found() -> None:
        raise LookupError("no such post")

    for _ in range(6):
        with pytest.raises(LookupError):
            await breaker.call(not_found, is_failure=lambda e: not isinstance(e, LookupError))
    assert _state(breaker) is BreakerState.CLOSED


async def test_a_cancelled_trial_call_frees_the_trial(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(30)
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(breaker.call(hangs))
    await started.wait()
    assert not breaker.allow()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_ratio": 0},
        {"failure_ratio": 1.5},
        {"window_seconds": 0},
        {"open_seconds": -1},
        {"minimum_calls": 0},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker("bad", **kwargs)  # type: ignore[arg-type]
