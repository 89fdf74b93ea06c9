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

from typing import Any, Final

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

# Indexes into a switch record (literal, so that type checkers know each field's type).
KIND: Final = 0
SEQ: Final = 1
T_NS: Final = 2
THREAD_ID: Final = 3
TASK_ID: Final = 4
TASK_NAME: Final = 5
FRAMES: Final = 6
AWAITING: Final = 7
DURATION_NS: Final = 8
EXCEPTION: Final = 9

# Indexes into a frame record.
F_FUNCTION: Final = 0
F_FILE: Final = 1
F_LINE: Final = 2
F_LASTI: Final = 3
F_LOCALS: Final = 4
F_BLOCKS: Final = 5
F_AWAITS: Final = 6

Block = tuple[str, int]
FrameRecord = tuple[
    str, str, int, int, "dict[str, Any] | None", tuple[Block, ...], "tuple[str, str | None] | None"
]
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
