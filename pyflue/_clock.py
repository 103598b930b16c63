"""Durations as events report them."""

from __future__ import annotations

import time

__all__ = ["elapsed_ms"]


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading), to the microsecond."""
    return round((time.perf_counter() - started) * 1000, 3)
