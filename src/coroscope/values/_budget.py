"""What one record's locals may still spend: JSON bytes and time.

Bytes are charged with :meth:`Budget.charge`, the one way to spend them: every value
rendered costs at least the bytes it adds to the record's JSON.

Time is there to stop runaway rendering (a huge container, a slow ``__repr__`` with
``COROSCOPE_REPR=all``), not to time ordinary values, so two rules keep it from firing on
cheap ones, whatever the machine's load:

* it is the thread's CPU time (``time.thread_time_ns``), so preemption, waiting for the
  GIL and other processes do not count;
* the clock is read only after every :data:`CHECK_EVERY` items of containers (and the
  first reading starts it), and after each ``__repr__`` call that ``all`` makes, whose
  duration is added.  A record of a few plain values never reads it.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["BUDGET_KEY", "BUDGET_MARK", "CHECK_EVERY", "MORE_KEY", "RESERVE", "Budget"]

BUDGET_MARK: Final = "[budget exceeded]"
BUDGET_KEY: Final = "[budget exceeded]"
MORE_KEY: Final = "[more]"

#: Bytes kept back from every budget for the markers written when it runs out: one
#: ``"[budget exceeded]":null`` inside a container and the frame's summary key.
RESERVE: Final = 96
#: Container items between two looks at the clock.
CHECK_EVERY: Final = 64

_cpu_ns = time.thread_time_ns


class Budget:
    """What one record may still spend.

    Create one per record (:meth:`coroscope.values.LocalsRenderer.new_budget`) and pass
    it to every frame of that record.  ``exceeded`` is ``None``, ``"bytes"`` or ``"time"``.
    """

    __slots__ = ("cpu_ns", "exceeded", "left", "limit_ns", "started_ns", "work")

    def __init__(self, max_bytes: int, max_ms: float) -> None:
        self.left = max_bytes - RESERVE
        self.limit_ns = int(max_ms * 1_000_000)
        self.started_ns = -1  # CPU clock at its first reading (-1: not read yet)
        self.cpu_ns = 0  # time measured around user calls (reprs), added to the clock's
        self.work = 0
        self.exceeded: str | None = None

    def spent(self) -> bool:
        """Whether the budget has run out (of bytes or of time)."""
        return self.exceeded is not None

    def charge(self, cost: int) -> bool:
        """Spend ``cost`` bytes; ``False`` (and the budget marked) if they are not there."""
        if cost > self.left:
            if self.exceeded is None:
                self.exceeded = "bytes"
            return False
        self.left -= cost
        return True

    def exceed(self, reason: str = "bytes") -> str:
        """Mark the budget spent (first reason wins); the marker to show instead."""
        if self.exceeded is None:
            self.exceeded = reason
        return BUDGET_MARK

    def worked(self, units: int) -> bool:
        """Count ``units`` container items; ``False`` once the time is spent.

        The clock is read every :data:`CHECK_EVERY` units only.
        """
        work = self.work + units
        if work < CHECK_EVERY:
            self.work = work
            return True
        self.work = 0
        if self.started_ns < 0:
            self.started_ns = _cpu_ns()
            return self._in_time(0)
        return self._in_time(_cpu_ns() - self.started_ns)

    def timed(self, ns: int) -> bool:
        """Add ``ns`` spent in a user call; ``False`` once the time is spent."""
        self.cpu_ns += ns
        clock = _cpu_ns() - self.started_ns if self.started_ns >= 0 else 0
        return self._in_time(clock)

    def _in_time(self, clock_ns: int) -> bool:
        if clock_ns + self.cpu_ns > self.limit_ns:
            self.exceeded = "time"
            return False
        return True
