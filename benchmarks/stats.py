"""Medians and spreads: the one place raw samples become the figures that are reported."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["summarise"]


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted data (numpy's default method)."""
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(samples: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """Median, p10, p90, min and count of ``samples`` (each multiplied by ``scale``)."""
    ordered = sorted(x * scale for x in samples)
    return {
        "median": statistics.median(ordered),
        "p10": _quantile(ordered, 0.10),
        "p90": _quantile(ordered, 0.90),
        "min": ordered[0],
        "n": len(ordered),
    }
