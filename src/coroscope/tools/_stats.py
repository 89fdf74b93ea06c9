"""Bounded-memory statistics for ``coroscope report``: quantile sketches and seq gaps."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right

__all__ = ["EXACT_LIMIT", "RELATIVE_ERROR", "QuantileSketch", "SeqTracker"]

#: Samples per await site kept exactly; quantiles over at most this many are exact.
EXACT_LIMIT = 1000
#: Relative error bound of a quantile once a site has more than :data:`EXACT_LIMIT` samples.
RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_INV_LOG_GAMMA = 1 / math.log(_GAMMA)
_TINY = 1e-9  # values at or below this (0.0 ms waits, clock noise) share one "zero" bucket


class QuantileSketch:
    """Count, total, min, max and quantiles of a stream of values, in bounded memory.

    The first :data:`EXACT_LIMIT` values are kept as they are (an ``array('d')``), so small
    samples give exact nearest-rank quantiles.  Beyond that the values move into
    logarithmic buckets (a DDSketch-style mapping with ``gamma = 1.01 / 0.99``): a quantile
    is then the midpoint of the bucket holding the nearest-rank value, within 1% of it
    (relative), and clamped to the exact min and max.  A bucket covers a factor of about
    1.02, so 1 us .. 1 day is some 1,300 buckets at most.
    """

    __slots__ = ("_buckets", "_exact", "_zeros", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._exact: array[float] | None = array("d")
        self._buckets: dict[int, int] = {}
        self._zeros = 0

    @property
    def exact(self) -> bool:
        """Whether quantiles are exact (at most :data:`EXACT_LIMIT` values so far)."""
        return self._exact is not None

    def add(self, value: float) -> None:
        """Add one value."""
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        exact = self._exact
        if exact is not None:
            exact.append(value)
            if len(exact) > EXACT_LIMIT:
                self._exact = None
                for v in exact:
                    self._bucket(v)
            return
        self._bucket(value)

    def _bucket(self, value: float) -> None:
        if value <= _TINY:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) * _INV_LOG_GAMMA)
        buckets = self._buckets
        buckets[index] = buckets.get(index, 0) + 1

    def quantile(self, percent: int) -> float | None:
        """The nearest-rank ``percent``-th percentile (the value at rank ``ceil(p/100 * n)``)."""
        if self.count == 0:
            return None
        rank = max(1, (percent * self.count + 99) // 100)
        if self._exact is not None:
            return sorted(self._exact)[rank - 1]
        seen = self._zeros
        if seen >= rank:
            return min(max(0.0, self.min), self.max)
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * _GAMMA**index / (_GAMMA + 1)
                return min(max(estimate, self.min), self.max)
        return self.max  # unreachable: the buckets hold every value

    @property
    def mean(self) -> float | None:
        """The arithmetic mean, ``None`` if empty."""
        return self.total / self.count if self.count else None


class SeqTracker:
    """The ``seq`` numbers seen from one process, as sorted disjoint intervals.

    In-order numbers extend the last interval (the common case, O(1)); numbers arriving a
    little out of order (threads) fill holes.  When more than ``max_intervals`` holes are
    open, the lowest one is declared lost for good and merged away, so memory stays
    bounded; a number that arrives after its hole was merged away counts as a duplicate.
    Loss before the first or after the last number seen cannot be detected.
    """

    __slots__ = ("_ends", "_starts", "duplicates", "lost", "max_intervals", "seen")

    def __init__(self, max_intervals: int = 1024) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.lost = 0  # numbers in holes merged away
        self.duplicates = 0
        self.seen = 0
        self.max_intervals = max_intervals

    def add(self, seq: int) -> None:
        """Record one ``seq`` number."""
        self.seen += 1
        ends = self._ends
        if ends and seq == ends[-1] + 1:
            ends[-1] = seq
            return
        starts = self._starts
        i = bisect_right(starts, seq) - 1
        if i >= 0 and seq <= ends[i]:
            self.duplicates += 1
            return
        join_left = i >= 0 and ends[i] + 1 == seq
        join_right = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if join_left and join_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif join_left:
            ends[i] = seq
        elif join_right:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)
            if len(starts) > self.max_intervals:
                self.lost += starts[1] - ends[0] - 1
                ends[0] = ends[1]
                del starts[1], ends[1]

    @property
    def first(self) -> int | None:
        """The lowest number seen."""
        return self._starts[0] if self._starts else None

    @property
    def last(self) -> int | None:
        """The highest number seen."""
        return self._ends[-1] if self._ends else None

    @property
    def missing(self) -> int:
        """Numbers between the first and the last seen that never arrived."""
        starts, ends = self._starts, self._ends
        holes = sum(starts[k + 1] - ends[k] - 1 for k in range(len(starts) - 1))
        return self.lost + holes
