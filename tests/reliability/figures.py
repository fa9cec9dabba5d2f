"""Figures the reliability suite measures, kept for docs/reliability.md.

Each test module records what it counted (requests fuzzed, faults injected,
writes acknowledged and found) under its own name in
`.run/reliability/figures.json`, so a run leaves the numbers the document
quotes next to its logs; `recorded_at` tells this run's entries from older ones.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.stack import RUN_DIR

FIGURES_FILE: Path = RUN_DIR / "reliability" / "figures.json"
_lock = threading.Lock()


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Merge `figures` into the entry `name` of the figures file."""
    with _lock:
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        try:
            current: dict[str, Any] = json.loads(FIGURES_FILE.read_text())
        except (OSError, ValueError):
            current = {}
        entry = current.setdefault(name, {})
        entry.update(figures)
        entry["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        FIGURES_FILE.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
