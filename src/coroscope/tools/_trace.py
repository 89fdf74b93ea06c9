"""``coroscope trace``: coroscope logs as a Chrome Trace Event file for ui.perfetto.dev.

Every task becomes a track (a "thread" of its process) named ``<task name> #<task id>``,
holding complete (``"X"``) events that tile its life without overlapping:

* ``run: <resumed at> -> <location>`` -- a step, from the resume (or the task's start,
  ``step_ms`` before its first suspend: ``start``) to the suspend at ``<location>``;
* ``wait: <awaited type> at <location>`` -- from the suspend to the resume, with the
  awaited object's repr and the await chain in its arguments.

Each event-loop thread gets a ``loop`` track with ``loop blocked`` spans (from
``loop.blocked`` / ``loop.unblocked``), instants for ``dropped`` records and, process-wide,
an ``incident N: <trigger>`` instant per recorder-mode incident.  Slow steps, ``task.stuck``
and ``task.done`` are instants on their task's track; a slow ``end`` closes the task's last
run span.  Spans still open at the end of the input end at the last timestamp seen in
their process and say so in their arguments.

The output is written as it is produced (the JSON object format, ``traceEvents`` first), so
memory holds only the open span of each live task, at most ``--max-tasks`` of them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from .. import _schema as S
from ._places import frame_location, frames_summary, location_locals, place_text, timestamp_us

__all__ = ["BinaryOutput", "TraceBuilder", "TraceWriter"]

_IDLE, _RUNNING, _WAITING = 0, 1, 2
_LOOP_SORT_BASE = -1_000_000  # loop tracks sort above task tracks


def _number(value: object) -> float | None:
    cls = type(value)
    if cls is float or cls is int:
        return value  # type: ignore[return-value]
    return None


def _us(ms: float) -> int:
    return round(ms * 1000)


class BinaryOutput(Protocol):
    """Where a trace goes: anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> object: ...


class TraceWriter:
    """Writes ``{"traceEvents": [...], ...}`` one event at a time to a binary stream."""

    __slots__ = ("_first", "_out", "events")

    def __init__(self, out: BinaryOutput) -> None:
        self._out = out
        self._first = True
        self.events = 0
        out.write(b'{"traceEvents":[')

    def event(self, event: dict[str, Any]) -> None:
        """Append one trace event."""
        self._out.write((b"\n" if self._first else b",\n") + orjson.dumps(event))
        self._first = False
        self.events += 1

    def close(self, other_data: dict[str, Any]) -> None:
        """End the event array and the object (the stream itself is left open)."""
        self._out.write(b'\n],"displayTimeUnit":"ms","otherData":')
        self._out.write(orjson.dumps(other_data))
        self._out.write(b"}\n")


class _Track:
    """One task's track (or a loop's) and its open span."""

    __slots__ = (
        "args",
        "label",
        "last_end",
        "pid",
        "resumed_at",
        "since",
        "state",
        "task_id",
        "task_name",
        "tid",
    )

    def __init__(self, pid: int, tid: int, task_id: object, task_name: object) -> None:
        self.pid = pid
        self.tid = tid
        self.task_id = task_id
        self.task_name = task_name
        self.state = _IDLE
        self.since = 0
        self.last_end = -(2**62)
        self.label = ""
        self.args: dict[str, Any] = {}
        self.resumed_at: str | None = None


class _Process:
    __slots__ = ("last_ts", "loops", "next_tid", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.next_tid = 1
        self.last_ts = 0
        self.loops: dict[object, _Track] = {}

    def new_tid(self) -> int:
        tid = self.next_tid
        if tid == self.pid:  # a tid equal to the pid is the "main thread" to trace viewers
            tid += 1
        self.next_tid = tid + 1
        return tid


class TraceBuilder:
    """Turns coroscope records (:meth:`feed`) into trace events on a :class:`TraceWriter`."""

    def __init__(
        self,
        writer: TraceWriter,
        *,
        innermost: bool = False,
        with_locals: bool = False,
        max_tasks: int = 100_000,
    ) -> None:
        self.writer = writer
        self.innermost = innermost
        self.with_locals = with_locals
        self.max_tasks = max_tasks
        self.procs: dict[int, _Process] = {}
        self.tasks: OrderedDict[tuple[int, object], _Track] = OrderedDict()
        self.tracks = 0
        self.evicted = 0
        self.no_timestamp = 0
        self.events: dict[str, int] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], _Process, int], None]] = {
            S.SUSPEND: self._on_suspend,
            S.RESUME: self._on_resume,
            S.END: self._on_end,
            S.TASK_DONE: self._on_task_done,
            S.LOOP_BLOCKED: self._on_blocked,
            S.LOOP_UNBLOCKED: self._on_unblocked,
            S.TASK_STUCK: self._on_stuck,
            S.DROPPED: self._on_dropped,
            S.INCIDENT: self._on_incident,
        }

    # -- plumbing -------------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        """Account for one coroscope record."""
        event = rec.get(S.EVENT)
        if type(event) is not str:
            event = "<no event>"
        events = self.events
        if event in events or len(events) < 256:
            events[event] = events.get(event, 0) + 1
        ts = timestamp_us(rec.get(S.TIMESTAMP))
        if ts is None:
            self.no_timestamp += 1
            return
        pid = rec.get(S.PID)
        if type(pid) is not int:
            pid = 0
        proc = self.procs.get(pid)
        if proc is None:
            proc = self.procs[pid] = _Process(pid)
            self.writer.event(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": pid,
                    "tid": 0,
                    "ts": 0,
                    "args": {"name": f"pid {pid}"},
                }
            )
        proc.last_ts = max(proc.last_ts, ts)
        handler = self._handlers.get(event)
        if handler is not None:
            handler(rec, proc, ts)

    def _name_track(self, track: _Track, name: str, sort_index: int) -> None:
        self.tracks += 1
        emit = self.writer.event
        emit(
            {
                "ph": "M",
                "name": "thread_name",
                "pid": track.pid,
                "tid": track.tid,
                "ts": 0,
                "args": {"name": name},
            }
        )
        emit(
            {
                "ph": "M",
                "name": "thread_sort_index",
                "pid": track.pid,
                "tid": track.tid,
                "ts": 0,
                "args": {"sort_index": sort_index},
            }
        )

    def _task_track(
        self, rec: dict[str, Any], proc: _Process, *, create: bool = True
    ) -> _Track | None:
        task = rec.get(S.TASK)
        if type(task) is not dict:
            return None
        task_id = task.get(S.ID)
        if type(task_id) is not int and type(task_id) is not str:
            return None
        name = task.get(S.NAME)
        key = (proc.pid, task_id)
        track = self.tasks.get(key)
        if track is not None and name is not None and track.task_name != name:
            # Ids are unique only for a task's life: another name means another task.
            self._close(self.tasks.pop(key), proc.last_ts, "replaced")
            track = None
        if track is None:
            if not create:
                return None
            track = _Track(proc.pid, proc.new_tid(), task_id, name)
            self._name_track(track, f"{name if name is not None else '?'} #{task_id}", track.tid)
            self.tasks[key] = track
            if len(self.tasks) > self.max_tasks:
                _, old = self.tasks.popitem(last=False)
                self.evicted += 1
                self._close(old, self.procs[old.pid].last_ts, "evicted")
        else:
            self.tasks.move_to_end(key)
        return track

    def _loop_track(self, rec: dict[str, Any], proc: _Process) -> _Track:
        thread_id = rec.get(S.THREAD_ID)
        thread = rec.get(S.THREAD)
        key: object = (
            thread_id if type(thread_id) is int else thread if type(thread) is str else None
        )
        track = proc.loops.get(key)
        if track is None:
            track = _Track(proc.pid, proc.new_tid(), None, thread)
            label = f"loop ({thread})" if type(thread) is str else "loop"
            self._name_track(track, label, _LOOP_SORT_BASE + len(proc.loops))
            proc.loops[key] = track
        return track

    def _span(
        self, track: _Track, start: int, end: int, *, name: str, cat: str, args: dict[str, Any]
    ) -> None:
        start = max(start, track.last_end)
        end = max(end, start)
        self.writer.event(
            {
                "ph": "X",
                "name": name,
                "cat": cat,
                "ts": start,
                "dur": end - start,
                "pid": track.pid,
                "tid": track.tid,
                "args": args,
            }
        )
        track.last_end = end

    def _instant(
        self, track: _Track, ts: int, name: str, cat: str, args: dict[str, Any], scope: str = "t"
    ) -> None:
        self.writer.event(
            {
                "ph": "i",
                "s": scope,
                "name": name,
                "cat": cat,
                "ts": ts,
                "pid": track.pid,
                "tid": track.tid,
                "args": args,
            }
        )

    def _close(self, track: _Track, end: int, why: str) -> None:
        """End a track's open span at ``end`` (end of input, eviction, id reuse)."""
        if track.state == _RUNNING:
            args = {"resumed_at": track.resumed_at, "unfinished": why}
            self._span(track, track.since, end, name="run (unfinished)", cat="run", args=args)
        elif track.state == _WAITING:
            args = dict(track.args)
            args["unfinished"] = why
            self._span(
                track, track.since, end, name=track.label + " (unfinished)", cat="wait", args=args
            )
        track.state = _IDLE
        track.args = {}

    # -- records --------------------------------------------------------------------------

    def _on_suspend(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc)
        if track is None:
            return
        frames = rec.get(S.FRAMES)
        location = frame_location(frames, innermost=self.innermost)
        step = _number(rec.get(S.STEP_MS))
        start: int | None = None
        if track.state == _RUNNING:
            start = track.since
        else:
            if step is not None:
                start = ts - _us(step)
            if track.state == _WAITING:
                # Its resume is not in the log (dropped): the wait ended when this step began.
                args = track.args
                args["unfinished"] = "resume not in the log"
                end = track.since if start is None else start
                self._span(track, track.since, end, name=track.label, cat="wait", args=args)
        if start is not None:
            resumed_at = track.resumed_at if track.state == _RUNNING else None
            args = {
                "resumed_at": resumed_at or place_text(rec.get(S.RESUMED_AT)),
                "suspended_at": location,
                "step_ms": step,
            }
            if rec.get(S.SLOW) is not None:
                args["slow"] = rec.get(S.SLOW)
            began = args["resumed_at"] or ("start" if track.state == _IDLE else "?")
            self._span(track, start, ts, name=f"run: {began} -> {location}", cat="run", args=args)
            self._slow_step(rec, track, ts, location)
        awaiting = rec.get(S.AWAITING)
        kind: object = "?"
        wait_args: dict[str, Any] = {"location": location}
        if type(awaiting) is dict:
            kind = awaiting.get(S.TYPE) or "?"
            wait_args["awaiting"] = awaiting.get(S.REPR)
        wait_args["frames"] = frames_summary(frames)
        if self.with_locals:
            wait_args["locals"] = location_locals(frames, location)
        track.state = _WAITING
        track.since = ts
        track.label = f"wait: {kind} at {location}"
        track.args = wait_args
        track.resumed_at = None

    def _on_resume(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc)
        if track is None:
            return
        frames = rec.get(S.FRAMES)
        if frames is None and track.state == _WAITING and "location" in track.args:
            location = track.args["location"]  # it names its suspend: the same place
        else:
            location = frame_location(frames, innermost=self.innermost)
        waited = _number(rec.get(S.WAITED_MS))
        exception = rec.get(S.EXCEPTION)
        if track.state == _WAITING:
            args = track.args
            args["waited_ms"] = waited
            if exception is not None:
                args["resumed_by"] = exception
            self._span(track, track.since, ts, name=track.label, cat="wait", args=args)
        else:
            # Its suspend is not in the log: the log starts mid-wait, or the record was dropped.
            start = None if waited is None else ts - _us(waited)
            if track.state == _RUNNING:
                end = track.since if start is None else start
                args = {"resumed_at": track.resumed_at, "unfinished": "suspend not in the log"}
                self._span(track, track.since, end, name="run (unfinished)", cat="run", args=args)
            if start is not None:
                args = {"location": location, "frames": frames_summary(frames), "waited_ms": waited}
                kind: object = "?"
                awaiting = rec.get(S.AWAITING)
                if type(awaiting) is dict:
                    kind = awaiting.get(S.TYPE) or "?"
                    args["awaiting"] = awaiting.get(S.REPR)
                if exception is not None:
                    args["resumed_by"] = exception
                name = f"wait: {kind} at {location}"
                self._span(track, start, ts, name=name, cat="wait", args=args)
        track.state = _RUNNING
        track.since = ts
        track.resumed_at = location
        track.args = {}

    def _on_task_done(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc, create=False)
        if track is None:
            return
        outcome = rec.get(S.OUTCOME)
        if track.state == _RUNNING:
            args = {"resumed_at": track.resumed_at, "outcome": outcome}
            self._span(track, track.since, ts, name=f"run: done ({outcome})", cat="run", args=args)
        elif track.state == _WAITING:
            self._close(track, ts, "task done")
        track.state = _IDLE
        info = {k: rec.get(k) for k in ("outcome", "age_ms", "switches", "run_ms", "wait_ms")}
        if type(rec.get(S.CANCELLED_AT)) is list:
            info["cancelled_at"] = frame_location(rec[S.CANCELLED_AT], innermost=self.innermost)
        self._instant(track, ts, f"done: {outcome}", "task", info)
        task = rec.get(S.TASK)
        if type(task) is dict:
            self.tasks.pop((proc.pid, task.get(S.ID)), None)

    def _on_blocked(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        loop = self._loop_track(rec, proc)
        blocked = _number(rec.get(S.BLOCKED_MS)) or 0.0
        task = rec.get(S.TASK)
        task_name = task.get(S.NAME) if type(task) is dict else None
        stack = rec.get(S.STACK)
        where = frame_location(stack, innermost=self.innermost) if type(stack) is list else None
        args: dict[str, Any] = {"blocked_ms": blocked, "task": task_name, "where": where}
        if type(stack) is list:
            args["stack"] = frames_summary(stack)
        if loop.state != _WAITING:
            loop.state = _WAITING
            loop.since = ts - _us(blocked)
            loop.label = "loop blocked"
            loop.args = dict(args)
        self._instant(loop, ts, "loop blocked", "blocked", args)
        track = self._task_track(rec, proc, create=False)
        if track is not None:
            self._instant(track, ts, "blocking the loop", "blocked", args)

    def _on_unblocked(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        loop = self._loop_track(rec, proc)
        total = _number(rec.get(S.BLOCKED_MS))
        if loop.state == _WAITING:
            args = loop.args
            start = loop.since if total is None else ts - _us(total)
        else:
            args = {}
            start = ts if total is None else ts - _us(total)
        args["blocked_ms"] = total
        self._span(loop, start, ts, name="loop blocked", cat="blocked", args=args)
        loop.state = _IDLE
        loop.args = {}

    def _slow_step(self, rec: dict[str, Any], track: _Track, ts: int, location: str) -> None:
        if rec.get(S.SLOW) is not None:
            args = {"step_ms": rec.get(S.STEP_MS), "location": location}
            self._instant(track, ts, "slow step", "alert", args)

    def _on_end(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        """A task's final step (logged when slow): the run span ends with the task."""
        track = self._task_track(rec, proc)
        if track is None:
            return
        location = frame_location(rec.get(S.FRAMES), innermost=self.innermost)
        step = _number(rec.get(S.STEP_MS))
        start = track.since if track.state == _RUNNING else None
        if start is None and step is not None:
            start = ts - _us(step)
        if start is not None:
            began = track.resumed_at or place_text(rec.get(S.RESUMED_AT)) or "?"
            args = {"resumed_at": began, "ended_at": location, "step_ms": step}
            if rec.get(S.EXCEPTION) is not None:
                args["exception"] = rec.get(S.EXCEPTION)
            self._span(track, start, ts, name=f"run: {began} -> end", cat="run", args=args)
        self._slow_step(rec, track, ts, location)
        track.state = _IDLE
        track.resumed_at = None

    def _on_stuck(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc)
        if track is not None:
            args = {k: v for k, v in rec.items() if k not in _COMMON_KEYS and k != "frames"}
            args["location"] = frame_location(rec.get(S.FRAMES), innermost=self.innermost)
            self._instant(track, ts, "stuck", "alert", args)

    def _on_dropped(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        loop = self._loop_track(rec, proc)
        count, reason = rec.get(S.COUNT), rec.get(S.REASON)
        args = {"count": count, "reason": reason}
        self._instant(loop, ts, f"dropped {count} ({reason})", "dropped", args)

    def _on_incident(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        args = {k: rec.get(k) for k in (S.INCIDENT_ID, S.TRIGGER, S.REASON, S.RECORDS)}
        name = f"incident {rec.get(S.INCIDENT_ID)}: {rec.get(S.TRIGGER)}"
        self._instant(self._loop_track(rec, proc), ts, name, "incident", args, scope="p")

    def finish(self) -> None:
        """Close every span still open, at the last timestamp of its process."""
        for track in self.tasks.values():
            self._close(track, self.procs[track.pid].last_ts, "end of log")
        self.tasks.clear()
        for proc in self.procs.values():
            for loop in proc.loops.values():
                if loop.state == _WAITING:
                    args = dict(loop.args)
                    args["unfinished"] = "end of log"
                    self._span(
                        loop,
                        loop.since,
                        proc.last_ts,
                        name="loop blocked",
                        cat="blocked",
                        args=args,
                    )
                    loop.state = _IDLE


_COMMON_KEYS = frozenset((*S.COMMON, S.TASK))
