"""The collector settings every service and the gateway apply once started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from common.gc_tuning import GEN0_THRESHOLD, tune_garbage_collection


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_gen0_is_collected_less_often() -> None:
    _, gen1, gen2 = gc.get_threshold()
    survivor: list[object] = [["made at start-up"]]
    tune_garbage_collection()
    assert gc.get_freeze_count() > 0
    # Frozen: in no generation the collector walks any more.
    assert gc.is_tracked(survivor)
    assert all(tracked is not survivor for tracked in gc.get_objects())
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_start_up_are_still_collected() -> None:
    tune_garbage_collection()

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    del node
    assert gc.collect() > 0
