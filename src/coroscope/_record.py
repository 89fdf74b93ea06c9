"""The compact records the capture callbacks hand to the buffer.

Records are plain tuples: building one in a ``sys.monitoring`` callback must cost as little
as possible, and a tuple is the cheapest container CPython has.  Everything in a record is
already immutable or rendered (strings, numbers, small dicts of rendered locals), so the
writer thread can turn it into an event dict later without looking at live objects.

Layout of a switch record (index constants below)::

    (kind, seq, t_ns, thread_id, task_id, task_name, frames, awaiting, duration_ns,
     exception, level, resumed_at)

``t_ns`` is ``time.perf_counter_ns()`` at the switch; the writer converts it to wall-clock
time.  ``duration_ns`` is the step (on suspend) or the wait (on resume), ``-1`` if unknown.
``awaiting`` is a ``(type, repr)`` pair or ``None``; ``exception`` the type name of an
exception thrown in; ``level`` ``"info"`` or ``"warning"`` (a slow step); ``resumed_at``
the skeleton of the root frame where a slow step began, else ``None``.

Other records (``EVENT``) are ``(EVENT, seq, t_ns, thread_id, event, level, fields)``
with ``fields`` a dict of JSON-ready values added to the record's common keys.

``frames`` is a tuple of frame records, root first::

    (skeleton, locals, awaits)

The *skeleton* ``(function, file, line, lasti, blocks)`` depends only on the code object
and the instruction offset, so it is computed once and shared by every record of that
place.  ``blocks`` is a tuple of ``(kind, line)`` pairs, outermost first; ``locals`` a dict
of rendered values or ``None`` when locals are off; ``awaits`` a ``(type, name)`` pair or
``None``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "SUSPEND",
    "RESUME",
    "KIND_NAMES",
    "EVENT",
    "EventRecord",
    "FrameRecord",
    "Record",
    "Skeleton",
    "SwitchRecord",
    "Block",
]

SUSPEND = 0
RESUME = 1
EVENT = 2  # any other record: (EVENT, seq, t_ns, thread_id, event, level, fields)
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
LEVEL: Final = 10
RESUMED_AT: Final = 11

Block = tuple[str, int]
Skeleton = tuple[str, str, int, int, tuple[Block, ...]]
FrameRecord = tuple[Skeleton, "dict[str, Any] | None", "tuple[str, str | None] | None"]
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
    str,
    "Skeleton | None",
]

# Records other than switches (watchdog, snapshots, task life cycle): their fields are
# already JSON-ready when the record is made, since what they describe may change.
EventRecord = tuple[int, int, int, int, str, str, "dict[str, Any]"]
Record = SwitchRecord | EventRecord
