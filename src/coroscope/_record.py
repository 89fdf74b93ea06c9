"""The compact records capture hands to delivery: the contract between the two.

Records are plain tuples: building one in a ``sys.monitoring`` callback must cost as little
as possible, and a tuple is the cheapest container CPython has.  Everything in a record is
immutable or already rendered (strings, numbers, small dicts of rendered locals), so the
writer thread can turn it into JSON later without looking at live objects.

Layout of a switch record (``SUSPEND``, ``RESUME``, ``END``; index constants below)::

    (kind, seq, t_ns, thread_id, task_id, task_name, frames, awaiting, duration_ns,
     exception, level, resumed_at, suspend_seq, context)

``t_ns`` is ``time.perf_counter_ns()`` at the switch; the writer converts it to wall-clock
time.  ``duration_ns`` is the step (suspend, end) or the wait (resume), ``-1`` if unknown.
``awaiting`` is a ``(type, repr)`` pair or ``None``; ``exception`` the type name of an
exception thrown in; ``level`` ``"info"`` or ``"warning"`` (a slow step); ``resumed_at``
the place where a slow step began, else ``None``; ``suspend_seq`` (a resume) the ``seq`` of
the suspend record it follows when that record was written, else ``-1``: a resume then
carries no chain of its own (the suspend's is the same, a suspended frame cannot change).
``context`` is ``None`` or the task's rendered context fields (``context``, ``trace_id``,
``span_id``), added to the record as they are.

Other records (``EVENT``) are ``(EVENT, seq, t_ns, thread_id, event, level, fields)``
with ``fields`` a dict of JSON-ready values added to the record's common keys, except
that a value of type :class:`Frames` is a chain the writer renders like a switch's.

``frames`` is a tuple of frame records, root first::

    (place, locals, awaits, held)

A *place* ``(code, lasti, line)`` is where a frame stands: a code object and an
instruction offset, with the offset's source line.  The capture makes one tuple per
distinct place and shares it between records, so the writer renders each place (name,
file, line, offset and enclosing blocks) once.  ``locals`` is a dict of rendered values
or ``None`` when locals are off; ``awaits`` a ``(type, name)`` pair or ``None``; ``held``
what the frame's blocks hold, ``(kind, rendered value)`` in stack order with the exception
being handled last (kind ``except``), or ``None`` (locals off, nothing held, or unknown).
"""

from __future__ import annotations

from types import CodeType
from typing import Any, Final, cast

__all__ = [
    "AWAITING",
    "CONTEXT",
    "DURATION_NS",
    "END",
    "EVENT",
    "EVENT_FIELDS",
    "EVENT_LEVEL",
    "EVENT_NAME",
    "INCIDENT_BATCH",
    "IN_INCIDENT",
    "EXCEPTION",
    "FRAMES",
    "KIND",
    "LEVEL",
    "RESUME",
    "RESUMED_AT",
    "SEQ",
    "SUSPEND",
    "SUSPEND_SEQ",
    "TASK_ID",
    "TASK_NAME",
    "THREAD_ID",
    "T_NS",
    "EventRecord",
    "FrameRecord",
    "InIncident",
    "IncidentBatch",
    "Frames",
    "Place",
    "Record",
    "SwitchRecord",
    "level_of",
]

SUSPEND: Final = 0
RESUME: Final = 1
END: Final = 2  # a task's final step, closed by its end (logged when slow)
EVENT: Final = 3  # any other record: (EVENT, seq, t_ns, thread_id, event, level, fields)
# Recorder mode, writer side only: an incident's records as one buffer item, and each of
# them written with the incident's id.
INCIDENT_BATCH: Final = 4  # (INCIDENT_BATCH, incident_id, [record, ...])
IN_INCIDENT: Final = 5  # (IN_INCIDENT, incident_id, record)

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
SUSPEND_SEQ: Final = 12
CONTEXT: Final = 13
# ... and into an event record.
EVENT_NAME: Final = 4
EVENT_LEVEL: Final = 5
EVENT_FIELDS: Final = 6

Place = tuple[CodeType, int, int]
FrameRecord = tuple[
    Place,
    "dict[str, Any] | None",
    "tuple[str, str | None] | None",
    "tuple[tuple[str, Any], ...] | None",
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
    str,
    "Place | None",
    int,
    "dict[str, Any] | None",
]

# Records other than switches (watchdog, snapshots, task life cycle): their fields are
# JSON-ready when the record is made, since what they describe may change.
EventRecord = tuple[int, int, int, int, str, str, "dict[str, Any]"]
IncidentBatch = tuple[int, int, "list[Any]"]
InIncident = tuple[int, int, Any]
Record = SwitchRecord | EventRecord | IncidentBatch | InIncident


def level_of(record: Record) -> str:
    """The level of any record."""
    kind = record[KIND]
    if kind == EVENT:
        return cast(EventRecord, record)[EVENT_LEVEL]
    if kind == IN_INCIDENT:
        return level_of(cast(InIncident, record)[2])
    return cast(SwitchRecord, record)[LEVEL]


class Frames(tuple[FrameRecord, ...]):
    """A captured chain inside an event record's fields, rendered by the writer."""

    __slots__ = ()
