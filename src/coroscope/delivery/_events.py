"""Event building: a captured record becomes an event dict in the record schema.

The part of a frame that depends only on its place (function, file, line, lasti, blocks)
is made into a dict once per place and copied into each frame that stands there.  The
enclosing blocks of a place are derived here, on the writer thread, the first time the
place is rendered (see :mod:`._blocks`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, cast

from .. import _schema as S
from .._record import (
    AWAITING,
    CONTEXT,
    DURATION_NS,
    END,
    EVENT,
    EXCEPTION,
    FRAMES,
    IN_INCIDENT,
    KIND,
    LEVEL,
    RESUME,
    RESUMED_AT,
    SEQ,
    SUSPEND,
    SUSPEND_SEQ,
    T_NS,
    TASK_ID,
    TASK_NAME,
    THREAD_ID,
    EventRecord,
    FrameRecord,
    Frames,
    InIncident,
    Place,
    Record,
    SwitchRecord,
)
from .._threads import ThreadNames
from ._blocks import BlockIndex
from ._clock import WallClock

__all__ = ["EventBuilder"]

_KIND_NAMES = {SUSPEND: S.SUSPEND, RESUME: S.RESUME, END: S.END}
_MAX_PLACES = 65_536


def _ms(ns: int) -> float | None:
    return round(ns / 1e6, 3) if ns >= 0 else None


class EventBuilder:
    """Turns captured records into event dicts."""

    __slots__ = ("_places", "blocks", "clock", "pid", "threads")

    def __init__(self, clock: WallClock, threads: ThreadNames) -> None:
        self.pid = os.getpid()
        self.clock = clock
        self.threads = threads
        self.blocks = BlockIndex()
        self._places: dict[int, tuple[Place, dict[str, Any]]] = {}

    # -- pieces ---------------------------------------------------------------------------

    def place(self, place: Place) -> dict[str, Any]:
        """A place as ``{"function", "file", "line", "lasti", "blocks"}`` (shared: copy it)."""
        cached = self._places.get(id(place))
        if cached is not None and cached[0] is place:
            return cached[1]
        code, lasti, line = place
        rendered = {
            S.FUNCTION: code.co_qualname,
            S.FILE: code.co_filename,
            S.LINE: line,
            S.LASTI: lasti,
            S.BLOCKS: [
                {S.KIND: kind, S.LINE: at} for kind, at in self.blocks.blocks_at(code, line)
            ],
        }
        if len(self._places) >= _MAX_PLACES:
            self._places.clear()
        self._places[id(place)] = (place, rendered)
        return rendered

    def frames(self, frames: tuple[FrameRecord, ...]) -> list[dict[str, Any]]:
        """The JSON-ready list of a chain's frames."""
        place = self.place
        out = []
        for where, local_values, awaits, held in frames:
            frame = {
                **place(where),
                S.LOCALS: local_values,
                S.AWAITS: {S.TYPE: awaits[0], S.NAME: awaits[1]} if awaits is not None else None,
            }
            if held is not None:
                frame[S.BLOCKS] = attach_contents(frame[S.BLOCKS], held)
            out.append(frame)
        return out

    def location(self, place: Place | None) -> dict[str, Any] | None:
        """A place as ``{"function", "file", "line"}``."""
        if place is None:
            return None
        code, _, line = place
        return {S.FUNCTION: code.co_qualname, S.FILE: code.co_filename, S.LINE: line}

    def common(self, event: str, level: str, seq: int, t_ns: int, thread_id: int) -> dict[str, Any]:
        """The keys every record has."""
        return {
            S.EVENT: event,
            S.LEVEL: level,
            S.LOGGER: S.LOGGER_NAME,
            S.TIMESTAMP: self.clock.iso(t_ns),
            S.PID: self.pid,
            S.THREAD: self.threads.name(thread_id),
            S.THREAD_ID: thread_id,
            S.SEQ: seq,
        }

    # -- records --------------------------------------------------------------------------

    def build(self, record: Record) -> dict[str, Any]:
        """The event dict of any captured record."""
        kind = record[KIND]
        if kind == EVENT:
            return self.event(cast(EventRecord, record))
        if kind == IN_INCIDENT:
            tagged = cast(InIncident, record)
            event = self.build(tagged[2])
            event[S.INCIDENT_ID] = tagged[1]
            return event
        return self.switch(cast(SwitchRecord, record))

    def switch(self, record: SwitchRecord) -> dict[str, Any]:
        """The event dict of a switch record (``suspend``, ``resume``, ``end``)."""
        kind = record[KIND]
        event = self.common(
            _KIND_NAMES[kind], record[LEVEL], record[SEQ], record[T_NS], record[THREAD_ID]
        )
        event[S.TASK] = {S.NAME: record[TASK_NAME], S.ID: record[TASK_ID]}
        context = record[CONTEXT]
        if context is not None:
            event.update(context)
        awaiting = record[AWAITING]
        if kind == RESUME and record[SUSPEND_SEQ] >= 0:
            event[S.SUSPEND_SEQ] = record[SUSPEND_SEQ]
        else:
            event[S.FRAMES] = self.frames(record[FRAMES])
        if kind == RESUME:
            if awaiting is not None:
                event[S.AWAITING] = {S.TYPE: awaiting[0], S.REPR: awaiting[1]}
            event[S.WAITED_MS] = _ms(record[DURATION_NS])
            if record[EXCEPTION] is not None:
                event[S.EXCEPTION] = record[EXCEPTION]
            return event
        if kind == SUSPEND:
            event[S.AWAITING] = (
                {S.TYPE: awaiting[0], S.REPR: awaiting[1]} if awaiting is not None else None
            )
        elif record[EXCEPTION] is not None:  # END by an exception
            event[S.EXCEPTION] = record[EXCEPTION]
        event[S.STEP_MS] = _ms(record[DURATION_NS])
        if record[LEVEL] == S.WARNING:
            event[S.SLOW] = S.SLOW_STEP
            event[S.RESUMED_AT] = self.location(record[RESUMED_AT])
        return event

    def event(self, record: EventRecord) -> dict[str, Any]:
        """The event dict of a non-switch record; its chains are rendered here."""
        _, seq, t_ns, thread_id, name, level, fields = record
        event = self.common(name, level, seq, t_ns, thread_id)
        for key, value in fields.items():
            if type(value) is Frames:
                event[key] = self.frames(value)
            elif type(value) is list and value and type(value[0]) is dict:
                # One level down (a deadlock's tasks): chains inside a list of dicts.
                event[key] = [
                    {k: self.frames(v) if type(v) is Frames else v for k, v in item.items()}
                    if type(item) is dict
                    else item
                    for item in value
                ]
            else:
                event[key] = value
        return event

    def dropped(self, seq: int, count: int, reason: str) -> dict[str, Any]:
        """The event dict reporting ``count`` records lost for ``reason``."""
        event = self.common(
            S.DROPPED, S.WARNING, seq, time.perf_counter_ns(), threading.get_ident()
        )
        event[S.COUNT] = count
        event[S.REASON] = reason
        return event


_STACK_KINDS = frozenset({"with", "async with", "for", "async for"})
_EXCEPT_KINDS = frozenset({"except", "except*"})


def attach_contents(
    blocks: list[dict[str, Any]], held: tuple[tuple[str, Any], ...]
) -> list[dict[str, Any]]:
    """A frame's blocks (shared: copied here) with what each holds (``holds``).

    The stack's block objects are matched to the source's ``with``/``for`` blocks by order
    (both outermost first) and kind; if the kinds do not line up exactly (a block the source
    analysis could not see, a temporary that looked like an iterator) no such block gets
    contents, rather than a guess.  The exception being handled goes to the innermost
    ``except`` block.
    """
    stacked = [(kind, value) for kind, value in held if kind != "except"]
    handled = [value for kind, value in held if kind == "except"]
    out = [dict(block) for block in blocks]
    targets = [b for b in out if b[S.KIND] in _STACK_KINDS]
    if [b[S.KIND] for b in targets] == [kind for kind, _ in stacked]:
        for block, (_, value) in zip(targets, stacked, strict=True):
            block[S.HOLDS] = value
    if handled:
        excepts = [b for b in out if b[S.KIND] in _EXCEPT_KINDS]
        if excepts:
            excepts[-1][S.HOLDS] = handled[-1]
    return out
