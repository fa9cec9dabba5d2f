"""CPU used per process during a run, read from /proc (no agent, no extra package).

A process's CPU time is utime + stime of /proc/<pid>/stat; the difference
over a run, divided by the run's wall time, is the cores it kept busy (1.0 =
one core all the time). Groups sum several processes (Postgres: every
backend serving the benchmark database). The machine's own total from
/proc/stat is kept too, so a run can show how much CPU other work on the
machine (other users' tests) took meanwhile.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")

PidSource = Callable[[], list[int]]


def process_ticks(pid: int) -> int | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the command (which may hold spaces) start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_matching(predicate: Callable[[str], bool]) -> list[int]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and predicate(cmdline(int(entry.name))):
            found.append(int(entry.name))
    return found


def postgres_backends(database: str) -> PidSource:
    """Backends connected to `database` (their title names it: 'postgres: user db ...')."""
    return lambda: pids_matching(lambda c: c.startswith("postgres: ") and f" {database} " in c)


def named(fragment: str) -> PidSource:
    return lambda: pids_matching(lambda c: fragment in c)


@dataclass(slots=True)
class Snapshot:
    at: float
    ticks: dict[str, dict[int, int]]
    machine: tuple[int, int]


@dataclass(slots=True)
class CpuSampler:
    """Per-group CPU between start() and stop().

    Pid sources are asked at both ends and at every poll() between: a process
    that exits during the run (a pgbench connection's backend) takes its CPU
    time with it, so the last value a poll saw is what it counts.
    """

    groups: dict[str, PidSource]
    _start: Snapshot | None = field(default=None)
    _seen: dict[str, dict[int, int]] = field(default_factory=dict)

    def _snapshot(self) -> Snapshot:
        ticks: dict[str, dict[int, int]] = {}
        for name, source in self.groups.items():
            per_pid = {}
            for pid in source():
                value = process_ticks(pid)
                if value is not None:
                    per_pid[pid] = value
            ticks[name] = per_pid
        return Snapshot(time.monotonic(), ticks, machine_ticks())

    def start(self) -> None:
        self._start = self._snapshot()
        self._seen = {name: dict(ticks) for name, ticks in self._start.ticks.items()}

    def poll(self) -> None:
        """Remember every process's CPU time so far (call it now and then during the run)."""
        for name, ticks in self._snapshot().ticks.items():
            self._seen.setdefault(name, {}).update(ticks)

    def stop(self) -> dict[str, float]:
        """Cores used per group, plus `machine` (all CPUs, busy) and `machine_cores`."""
        if self._start is None:
            raise RuntimeError("start() first")
        end = self._snapshot()
        wall = end.at - self._start.at
        cores: dict[str, float] = {}
        for name, final in end.ticks.items():
            after = {**self._seen.get(name, {}), **final}
            before = self._start.ticks.get(name, {})
            used = sum(value - before.get(pid, 0) for pid, value in after.items())
            cores[name] = used / TICKS / wall if wall > 0 else 0.0
        busy = end.machine[0] - self._start.machine[0]
        total = end.machine[1] - self._start.machine[1]
        cpus = os.cpu_count() or 1
        cores["machine"] = cpus * busy / total if total else 0.0
        cores["machine_cores"] = float(cpus)
        return cores
