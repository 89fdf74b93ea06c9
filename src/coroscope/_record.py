"""The compact records the capture callbacks hand to the buffer.

Records are plain tuples: building one in a ``sys.monitoring`` callback must cost as little
as possible, and a tuple is the cheapest container CPython has.  Everything in a record is
already immutable or rendered (strings, numbers, small dicts of rendered locals), so the
writer thread can turn it into an event dict later without looking at live objects.

Layout of a switch record (index constants below)::

    (kind, seq, t_ns, thread_id, task_id, task_name, frames, awaiting, duration_ns, exception)

``t_ns`` is ``time.perf_counter_ns()`` at the switch; the writer converts it to wall-clock
time.  ``duration_ns`` is the step (on suspend) or the wait (on resume), ``-1`` if unknown.
``frames`` is a tuple of frame records, root first::

    (function, file, line, lasti, locals, blocks, awaits)

``locals`` is a dict of rendered values or ``None`` when locals are off; ``blocks`` a tuple
of ``(kind, line)`` pairs, innermost last; ``awaits`` a ``(type, name)`` pair or ``None``.
``awaiting`` is a ``(type, repr)`` pair.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SUSPEND",
    "RESUME",
    "KIND_NAMES",
    "FrameRecord",
    "SwitchRecord",
    "Block",
]

SUSPEND = 0
RESUME = 1
KIND_NAMES = ("suspend", "resume")

# Indexes into a switch record.
KIND, SEQ, T_NS, THREAD_ID, TASK_ID, TASK_NAME, FRAMES, AWAITING, DURATION_NS, EXCEPTION = range(10)

# Indexes into a frame record.
F_FUNCTION, F_FILE, F_LINE, F_LASTI, F_LOCALS, F_BLOCKS, F_AWAITS = range(7)

Block = tuple[str, int]
FrameRecord = tuple[str, str, int, int, "dict[str, Any] | None", tuple[Block, ...], "tuple[str, str | None] | None"]
SwitchRecord = tuple[
    int,
    int,
    int,
    int,
    int,
    str,
    tuple[FrameRecord, ...],
    "tuple[str, str] | None",
    int,
    "str | None",
]
