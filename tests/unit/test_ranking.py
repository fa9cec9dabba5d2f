"""Ranking formulas against values computed by hand (working shown in comments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.ranking import HOT_EPOCH_SECONDS, controversy, hot, wilson_lower_bound

EPOCH = datetime.fromtimestamp(HOT_EPOCH_SECONDS, UTC)


@pytest.mark.parametrize(
    ("up", "down", "offset_seconds", "expected"),
    [
        (1, 0, 45_000, 1.0),  # log10(1) = 0, plus 45000 / 45000 = 1
        (10, 0, 45_000, 2.0),  # log10(10) = 1, plus 1
        (100, 0, 0, 2.0),  # log10(100) = 2 at the epoch
        (0, 10, 0, -1.0),  # sign -1 times log10(10)
        (5, 5, 90_000, 2.0),  # score 0: only time counts, 90000 / 45000
        (1000, 1, 4_500, 3.1),  # log10(999) = 2.9995655, plus 0.1 -> 3.0995655
    ],
)
def test_hot(up: int, down: int, offset_seconds: int, expected: float) -> None:
    created = EPOCH + timedelta(seconds=offset_seconds)
    assert hot(up, down, created) == pytest.approx(expected, abs=5e-4)


def test_hot_time_is_worth_a_factor_of_ten_every_12_5_hours() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    later = now + timedelta(seconds=45_000)
    assert hot(10, 0, now) == pytest.approx(hot(1, 0, later))
    assert hot(11, 0, now) > hot(1, 0, later)


@pytest.mark.parametrize(
    ("up", "down", "expected"),
    [
        (0, 0, 0.0),
        # n=1, p=1, z^2=1.6423744: (1 + 0.8211872 - z*sqrt(0.4105936)) / 2.6423744 = 1/2.6423744
        (1, 0, 0.3784475),
        (0, 1, 0.0),
        # n=12, p=5/6: centre 0.9017660, spread 0.1539210, over 1.1368645
        (10, 2, 0.6578125),
    ],
)
def test_wilson_lower_bound(up: int, down: int, expected: float) -> None:
    assert wilson_lower_bound(up, down) == pytest.approx(expected, abs=1e-6)


def test_wilson_prefers_more_evidence() -> None:
    assert wilson_lower_bound(100, 20) > wilson_lower_bound(10, 2) > wilson_lower_bound(1, 0)


@pytest.mark.parametrize(
    ("up", "down", "expected"),
    [
        (10, 0, 0.0),
        (0, 10, 0.0),
        (10, 10, 20.0),  # balance 1: 20 ** 1
        (10, 5, 3.8729833),  # 15 ** 0.5
        (5, 10, 3.8729833),  # symmetric
        (100, 1, 1.0472327),  # 101 ** 0.01 = e ** (0.01 * ln 101) = e ** 0.0461512
    ],
)
def test_controversy(up: int, down: int, expected: float) -> None:
    assert controversy(up, down) == pytest.approx(expected, abs=1e-6)
