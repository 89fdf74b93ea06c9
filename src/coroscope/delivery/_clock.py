"""Wall-clock time of a record: ``perf_counter_ns`` readings to ISO 8601 UTC text."""

from __future__ import annotations

import time

__all__ = ["WallClock"]


class WallClock:
    """Converts ``perf_counter_ns`` readings to ISO 8601 UTC strings.

    The capture stores ``perf_counter_ns()``, so the timestamp is the time of the switch,
    not of rendering.  The offset between the two clocks is re-read by :meth:`sync` (once
    per batch), so a wall-clock step shows up within one batch.  Seconds are formatted
    once and cached.
    """

    __slots__ = ("_offset_ns", "_prefix", "_second")

    def __init__(self) -> None:
        self._offset_ns = 0
        self._second = -1
        self._prefix = ""
        self.sync()

    def sync(self) -> None:
        """Re-read the offset between wall-clock and ``perf_counter`` time."""
        self._offset_ns = time.time_ns() - time.perf_counter_ns()

    def wall_ns(self, perf_ns: int) -> int:
        """Wall-clock nanoseconds since the epoch for a ``perf_counter_ns`` reading."""
        return perf_ns + self._offset_ns

    def iso(self, perf_ns: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for a ``perf_counter_ns`` reading."""
        wall = perf_ns + self._offset_ns
        second, ns = divmod(wall, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{ns // 1000:06d}Z"
