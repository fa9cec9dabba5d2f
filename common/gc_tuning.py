"""The cyclic garbage collector's settings for a long-running service process.

A page of rows makes thousands of short-lived container objects (rows, ids,
records, messages), nearly all freed by reference counting as soon as the
answer is sent; with CPython's default gen-0 threshold of 700 allocations the
collector still runs dozens of times per page, and each older-generation pass
walks everything imported at start-up (SQLAlchemy's and protobuf's metadata,
the routes). In-process, reading the 500-comment tree spent about a third of
its CPU in the collector (about 13 ms with the defaults, 8 ms with collection
off, 8-9 ms with the settings below; see docs/performance.md).

So, once start-up is done: `gc.freeze()` moves every object alive then into a
permanent generation the collector never scans again (it was going to live
for the whole process anyway), and gen 0 is collected every 10,000
allocations instead of 700. Cycles are still collected, a little later; memory
held by young garbage stays in the low megabytes.
"""

from __future__ import annotations

import gc

# Allocations between gen-0 collections; gens 1 and 2 keep CPython's ratios.
GEN0_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Call once, after start-up (imports, app and metadata built), before serving."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
