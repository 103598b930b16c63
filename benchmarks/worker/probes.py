"""Measurement primitives shared by every adapter's subprocess.

This module runs inside each framework's own virtualenv, so it imports the standard library only:
whatever it imported would be charged to the framework under test.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["NotAvailable", "current_rss", "peak_rss", "time_runs"]


class NotAvailable(Exception):
    """A framework cannot run a scenario (a missing feature): reported as such, never as a number."""


def current_rss() -> int:
    """Resident set size now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def time_runs(
    run: Callable[[], Awaitable[Any]],
    *,
    warmup: int,
    min_runs: int,
    max_runs: int,
    budget_s: float,
) -> list[float]:
    """Wall time of each run in microseconds, after ``warmup`` untimed runs.

    Runs are timed one by one (so the spread is real), at least ``min_runs`` and at most
    ``max_runs`` of them, stopping once ``budget_s`` seconds are spent: a slow framework gets fewer
    samples instead of blowing the time budget of ``--quick``. A full collection before timing starts
    keeps garbage left by set-up out of the timed runs; the collector stays on, as in production.
    """
    for _ in range(warmup):
        await run()
    gc.collect()
    samples: list[float] = []
    perf = time.perf_counter
    deadline = perf() + budget_s
    while len(samples) < max_runs and (len(samples) < min_runs or perf() < deadline):
        start = perf()
        await run()
        samples.append((perf() - start) * 1e6)
    return samples
