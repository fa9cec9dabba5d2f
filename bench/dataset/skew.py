"""Skewed allocations (Zipf) that stay exact: totals always add up to what was asked.

Real discussion sites are heavy-tailed: a few communities hold most posts, a
few threads most comments and votes. Drawing each item's owner independently
would need one random draw per item (a million draws for a million comments)
and would not hit the totals exactly; these functions hand out counts in one
pass instead, deterministic for a given random generator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def zipf_weights(n: int, exponent: float) -> list[float]:
    """Weights 1/rank**exponent for ranks 1..n (rank 1 the heaviest)."""
    return [1.0 / (rank**exponent) for rank in range(1, n + 1)]


def allocate(
    total: int,
    weights: Sequence[float],
    *,
    cap: int | None = None,
    rng: random.Random,
) -> list[int]:
    """Split `total` into len(weights) counts proportional to weights, each at most cap.

    Floors of the proportional shares first, then the remainder one by one to
    slots drawn by weight among those still under the cap, so the counts sum to
    `total` exactly. Raises ValueError when the cap makes that impossible.
    """
    if total < 0:
        raise ValueError("total must not be negative")
    n = len(weights)
    if n == 0:
        if total:
            raise ValueError("nothing to allocate to")
        return []
    limit = total if cap is None else cap
    if limit * n < total:
        raise ValueError(f"{total} does not fit {n} slots of at most {limit}")
    weight_sum = float(sum(weights))
    counts = [min(limit, int(total * w / weight_sum)) for w in weights]
    remainder = total - sum(counts)
    while remainder > 0:
        open_slots = [i for i in range(n) if counts[i] < limit]
        draws = rng.choices(open_slots, [weights[i] for i in open_slots], k=remainder)
        for slot in draws:
            if remainder and counts[slot] < limit:
                counts[slot] += 1
                remainder -= 1
    return counts


def spread(total: int, n: int, *, rng: random.Random) -> list[int]:
    """Split total into n counts that differ by at most one, the extra ones at random slots."""
    base, extra = divmod(total, n)
    counts = [base] * n
    for slot in rng.sample(range(n), extra):
        counts[slot] += 1
    return counts
