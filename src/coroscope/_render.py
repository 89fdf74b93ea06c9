"""From captured records to JSON lines, on the writer thread.

Each record becomes a structlog *event dict*, goes through a structlog processor chain
(user processors first, then ``structlog.processors.JSONRenderer`` with ``orjson``) and
comes out as bytes.  The processors are called directly with structlog's protocol
``(logger, method_name, event_dict)``: coroscope keeps structlog's composable processors
without paying for a ``BoundLogger`` per record, and never touches the application's
global structlog configuration.

The timestamp is the time of the switch, not of rendering: the capture stores
``perf_counter_ns()``, and :class:`WallClock` maps it to UTC wall-clock time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import orjson
import structlog

from ._record import (
    AWAITING,
    DURATION_NS,
    EVENT,
    EXCEPTION,
    FRAMES,
    KIND,
    KIND_NAMES,
    LEVEL,
    RESUME,
    RESUMED_AT,
    SEQ,
    SUSPEND,
    T_NS,
    TASK_ID,
    TASK_NAME,
    THREAD_ID,
    EventRecord,
    FrameRecord,
    Record,
    Skeleton,
    SwitchRecord,
)

__all__ = [
    "LOGGER_NAME",
    "EventBuilder",
    "Processor",
    "Renderer",
    "ThreadNames",
    "WallClock",
    "frame_dicts",
]

LOGGER_NAME = "coroscope"

Processor = Callable[[Any, str, dict[str, Any]], Any]


class WallClock:
    """Converts ``perf_counter_ns`` readings to ISO 8601 UTC strings.

    The offset between the two clocks is re-read by :meth:`sync` (once per batch), so a
    wall-clock step shows up within one batch.  Seconds are formatted once and cached.
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


# Names of threads that ran tasks, noted when a task starts on them, for threads that have
# ended by the time their records are rendered.
_SEEN_THREAD_NAMES: dict[int, str] = {}


def note_thread_name() -> None:
    """Remember the calling thread's name (called when a loop is registered on it)."""
    if len(_SEEN_THREAD_NAMES) >= 4096:
        _SEEN_THREAD_NAMES.clear()
    _SEEN_THREAD_NAMES[threading.get_ident()] = threading.current_thread().name


class ThreadNames:
    """Thread id -> name, resolved on the writer thread (capture stores only the id)."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def name(self, ident: int) -> str:
        name = self._names.get(ident)
        if name is None:
            thread = threading._active.get(ident)  # type: ignore[attr-defined]
            if thread is None:
                return _SEEN_THREAD_NAMES.get(ident) or f"Thread-{ident}"
            name = str(thread.name)
            if len(self._names) > 4096:
                self._names.clear()
            self._names[ident] = name
        return name

    def forget(self) -> None:
        """Drop cached names (they may have changed)."""
        self._names.clear()


def frame_dicts(frames: tuple[FrameRecord, ...]) -> list[dict[str, Any]]:
    """Frames as JSON-ready dicts, for records built outside the writer (no caching)."""
    out = []
    for (function, file, line, lasti, blocks), local_values, awaits in frames:
        out.append(
            {
                "function": function,
                "file": file,
                "line": line,
                "lasti": lasti,
                "blocks": [{"kind": kind, "line": at} for kind, at in blocks],
                "locals": local_values,
                "awaits": {"type": awaits[0], "name": awaits[1]} if awaits is not None else None,
            }
        )
    return out


def _ms(ns: int) -> float | None:
    return round(ns / 1e6, 3) if ns >= 0 else None


class EventBuilder:
    """Turns a captured switch record into an event dict (the record schema).

    The part of a frame that depends only on its place (function, file, line, lasti,
    blocks) is turned into a dict once per place; a ``resume`` reuses the frame list built
    for its ``suspend`` (they share the captured tuple).
    """

    __slots__ = ("_pending_frames", "_skeletons", "clock", "pid", "threads")

    def __init__(self, clock: WallClock, threads: ThreadNames) -> None:
        self.pid = os.getpid()
        self.clock = clock
        self.threads = threads
        self._skeletons: dict[int, tuple[Skeleton, dict[str, Any]]] = {}
        self._pending_frames: dict[int, tuple[tuple[FrameRecord, ...], list[dict[str, Any]]]] = {}

    def _place(self, skeleton: Skeleton) -> dict[str, Any]:
        cached = self._skeletons.get(id(skeleton))
        if cached is not None and cached[0] is skeleton:
            return cached[1]
        function, file, line, lasti, blocks = skeleton
        place = {
            "function": function,
            "file": file,
            "line": line,
            "lasti": lasti,
            "blocks": [{"kind": kind, "line": at} for kind, at in blocks],
        }
        if len(self._skeletons) >= 65_536:
            self._skeletons.clear()
        self._skeletons[id(skeleton)] = (skeleton, place)
        return place

    def frames(self, frames: tuple[FrameRecord, ...]) -> list[dict[str, Any]]:
        """The JSON-ready list of a record's frames."""
        place = self._place
        return [
            {
                **place(skeleton),
                "locals": local_values,
                "awaits": {"type": awaits[0], "name": awaits[1]} if awaits is not None else None,
            }
            for skeleton, local_values, awaits in frames
        ]

    def location(self, skeleton: Skeleton | None) -> dict[str, Any] | None:
        """A place as ``{"function", "file", "line"}``."""
        if skeleton is None:
            return None
        return {"function": skeleton[0], "file": skeleton[1], "line": skeleton[2]}

    def common(self, event: str, level: str, seq: int, t_ns: int, thread_id: int) -> dict[str, Any]:
        """The keys every record has."""
        return {
            "event": event,
            "level": level,
            "logger": LOGGER_NAME,
            "timestamp": self.clock.iso(t_ns),
            "pid": self.pid,
            "thread": self.threads.name(thread_id),
            "thread_id": thread_id,
            "seq": seq,
        }

    def switch(self, record: Record) -> dict[str, Any]:
        """The event dict of any captured record (switches and others)."""
        kind = record[KIND]
        if kind == EVENT:
            return self.event(record)  # type: ignore[arg-type]
        record = cast(SwitchRecord, record)
        event = self.common(
            KIND_NAMES[kind], record[LEVEL], record[SEQ], record[T_NS], record[THREAD_ID]
        )
        event["task"] = {"name": record[TASK_NAME], "id": record[TASK_ID]}
        frames = record[FRAMES]
        pending = self._pending_frames
        awaiting = record[AWAITING]
        if kind == SUSPEND:
            frame_list = self.frames(frames)
            if len(pending) >= 65_536:
                pending.clear()
            pending[id(frames)] = (frames, frame_list)
            event["frames"] = frame_list
            event["awaiting"] = (
                {"type": awaiting[0], "repr": awaiting[1]} if awaiting is not None else None
            )
            event["step_ms"] = _ms(record[DURATION_NS])
            if record[LEVEL] == "warning":
                event["slow"] = "step"
                event["resumed_at"] = self.location(record[RESUMED_AT])
        elif kind == RESUME:
            cached = pending.pop(id(frames), None)
            event["frames"] = (
                cached[1] if cached is not None and cached[0] is frames else self.frames(frames)
            )
            if awaiting is not None:
                event["awaiting"] = {"type": awaiting[0], "repr": awaiting[1]}
            event["waited_ms"] = _ms(record[DURATION_NS])
            if record[EXCEPTION] is not None:
                event["exception"] = record[EXCEPTION]
        return event

    def event(self, record: EventRecord) -> dict[str, Any]:
        """The event dict of a non-switch record."""
        _, seq, t_ns, thread_id, name, level, fields = record
        event = self.common(name, level, seq, t_ns, thread_id)
        event.update(fields)
        return event

    def dropped(self, seq: int, count: int, reason: str) -> dict[str, Any]:
        """The event dict reporting ``count`` records lost for ``reason``."""
        event = self.common(
            "dropped", "warning", seq, time.perf_counter_ns(), threading.get_ident()
        )
        event["count"] = count
        event["reason"] = reason
        return event


def _orjson_dumps(event_dict: dict[str, Any], **_: Any) -> bytes:
    return orjson.dumps(event_dict, default=_fallback)


def _fallback(obj: object) -> str:
    # Only reached through user processors that add values orjson does not know.
    return f"<{type(obj).__qualname__}>"


class Renderer:
    """Runs the processor chain; the last processor must return ``bytes`` or ``str``.

    Without user processors the chain is just the JSON renderer, and the renderer calls
    ``orjson`` directly (decided once, here, not per record).
    """

    __slots__ = ("_chain", "render")

    def __init__(self, processors: Iterable[Processor] = ()) -> None:
        self._chain: tuple[Processor, ...] = (
            *processors,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        )
        self.render: Callable[[dict[str, Any]], bytes] = (
            self._run_chain if len(self._chain) > 1 else _orjson_dumps
        )

    def __call__(self, event_dict: dict[str, Any]) -> bytes:
        """Render one event dict; raises ``structlog.DropEvent`` if a processor drops it."""
        return self.render(event_dict)

    def _run_chain(self, event_dict: dict[str, Any]) -> bytes:
        value: Any = event_dict
        method = event_dict.get("level", "info")
        for processor in self._chain:
            value = processor(None, method, value)
        if type(value) is str:
            return value.encode("utf-8", "replace")
        return bytes(value)
