"""``coroscope trace``: coroscope logs as a Chrome Trace Event file for ui.perfetto.dev.

Every task becomes a track (a "thread" of its process) named ``<task name> #<task id>``,
holding complete (``"X"``) events that tile its life without overlapping:

* ``run: <resumed at> -> <location>`` -- a step, from the resume (or the task's start,
  ``step_ms`` before its first suspend: ``start``) to the suspend at ``<location>``;
* ``wait: <awaited type> at <location>`` -- from the suspend to the resume, with the
  awaited object's repr and the await chain in its arguments.

Each event-loop thread gets a ``loop`` track with ``loop blocked`` spans (from
``loop.blocked`` / ``loop.unblocked`` records) and instants for records the writer reported
``dropped``.  ``slow_step``, ``stuck`` and ``task.done`` records are instants on their task's
track.  Spans still open at the end of the input end at the last timestamp seen in their
process and say so in their arguments.

The output is written as it is produced (the JSON object format, ``traceEvents`` first), so
memory holds only the open span of each live task, at most ``--max-tasks`` of them.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from ._logread import (
    LogReader,
    Progress,
    ReadStats,
    check_inputs,
    frame_location,
    frames_summary,
    place_text,
    timestamp_us,
)

__all__ = ["BinaryOutput", "TraceBuilder", "TraceWriter", "main", "register", "run"]

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
            "suspend": self._on_suspend,
            "resume": self._on_resume,
            "task.done": self._on_task_done,
            "loop.blocked": self._on_blocked,
            "loop.unblocked": self._on_unblocked,
            "slow_step": self._on_slow_step,
            "stuck": self._on_stuck,
            "dropped": self._on_dropped,
        }

    # -- plumbing -------------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        """Account for one coroscope record."""
        event = rec.get("event")
        if type(event) is not str:
            event = "<no event>"
        events = self.events
        if event in events or len(events) < 256:
            events[event] = events.get(event, 0) + 1
        ts = timestamp_us(rec.get("timestamp"))
        if ts is None:
            self.no_timestamp += 1
            return
        pid = rec.get("pid")
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
        task = rec.get("task")
        if type(task) is not dict:
            return None
        task_id = task.get("id")
        if type(task_id) is not int and type(task_id) is not str:
            return None
        name = task.get("name")
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
        thread_id = rec.get("thread_id")
        thread = rec.get("thread")
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

    def _instant(self, track: _Track, ts: int, name: str, cat: str, args: dict[str, Any]) -> None:
        self.writer.event(
            {
                "ph": "i",
                "s": "t",
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
        frames = rec.get("frames")
        location = frame_location(frames, innermost=self.innermost)
        step = _number(rec.get("step_ms"))
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
                "resumed_at": resumed_at or place_text(rec.get("resumed_at")),
                "suspended_at": location,
                "step_ms": step,
            }
            if rec.get("slow") is not None:
                args["slow"] = rec.get("slow")
            began = args["resumed_at"] or ("start" if track.state == _IDLE else "?")
            self._span(track, start, ts, name=f"run: {began} -> {location}", cat="run", args=args)
        awaiting = rec.get("awaiting")
        kind: object = "?"
        wait_args: dict[str, Any] = {"location": location}
        if type(awaiting) is dict:
            kind = awaiting.get("type") or "?"
            wait_args["awaiting"] = awaiting.get("repr")
        wait_args["frames"] = frames_summary(frames)
        if self.with_locals:
            wait_args["locals"] = _location_locals(frames, location)
        track.state = _WAITING
        track.since = ts
        track.label = f"wait: {kind} at {location}"
        track.args = wait_args
        track.resumed_at = None

    def _on_resume(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc)
        if track is None:
            return
        frames = rec.get("frames")
        location = frame_location(frames, innermost=self.innermost)
        waited = _number(rec.get("waited_ms"))
        exception = rec.get("exception")
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
                awaiting = rec.get("awaiting")
                if type(awaiting) is dict:
                    kind = awaiting.get("type") or "?"
                    args["awaiting"] = awaiting.get("repr")
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
        outcome = rec.get("outcome")
        if track.state == _RUNNING:
            args = {"resumed_at": track.resumed_at, "outcome": outcome}
            self._span(track, track.since, ts, name=f"run: done ({outcome})", cat="run", args=args)
        elif track.state == _WAITING:
            self._close(track, ts, "task done")
        track.state = _IDLE
        info = {k: rec.get(k) for k in ("outcome", "age_ms", "switches", "run_ms", "wait_ms")}
        if type(rec.get("cancelled_at")) is list:
            info["cancelled_at"] = frame_location(rec["cancelled_at"], innermost=self.innermost)
        self._instant(track, ts, f"done: {outcome}", "task", info)
        task = rec.get("task")
        if type(task) is dict:
            self.tasks.pop((proc.pid, task.get("id")), None)

    def _on_blocked(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        loop = self._loop_track(rec, proc)
        blocked = _number(rec.get("blocked_ms")) or 0.0
        task = rec.get("task")
        task_name = task.get("name") if type(task) is dict else None
        stack = rec.get("stack")
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
        total = _number(rec.get("blocked_ms"))
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

    def _on_slow_step(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc)
        if track is not None:
            location = frame_location(rec.get("frames"), innermost=self.innermost)
            args = {"step_ms": rec.get("step_ms"), "location": location}
            self._instant(track, ts, "slow step", "alert", args)

    def _on_stuck(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        track = self._task_track(rec, proc)
        if track is not None:
            args = {k: v for k, v in rec.items() if k not in _COMMON_KEYS and k != "frames"}
            args["location"] = frame_location(rec.get("frames"), innermost=self.innermost)
            self._instant(track, ts, "stuck", "alert", args)

    def _on_dropped(self, rec: dict[str, Any], proc: _Process, ts: int) -> None:
        loop = self._loop_track(rec, proc)
        count, reason = rec.get("count"), rec.get("reason")
        args = {"count": count, "reason": reason}
        self._instant(loop, ts, f"dropped {count} ({reason})", "dropped", args)

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


_COMMON_KEYS = frozenset(
    {"event", "level", "logger", "timestamp", "pid", "thread", "thread_id", "seq", "task"}
)


def _location_locals(frames: object, location: str) -> object:
    """The locals of the frame ``location`` names (the innermost frame with that text)."""
    if type(frames) is not list:
        return None
    for frame in reversed(frames):
        if type(frame) is dict:
            text = f"{frame.get('file', '?')}:{frame.get('line', '?')} {frame.get('function', '?')}"
            if text == location:
                return frame.get("locals")
    return None


# -- command line ---------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="coroscope logs (plain or gzip; '-' for stdin)"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="TRACE",
        help="the trace file to write ('-' for stdout; a name ending in .gz is gzipped)",
    )
    parser.add_argument(
        "--innermost",
        action="store_true",
        help="locate switches at the innermost frame, even inside asyncio",
    )
    parser.add_argument(
        "--locals",
        action="store_true",
        help="add the waiting frame's captured locals to each wait span's arguments",
    )
    parser.add_argument(
        "--max-tasks",
        type=_positive,
        default=100_000,
        metavar="N",
        help="live tasks tracked at once; the least recently seen have their open span "
        "closed beyond it (default 100000)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number greater than 0") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a whole number greater than 0")
    return value


def _want_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _convert(args: argparse.Namespace, out: BinaryOutput) -> tuple[TraceBuilder, ReadStats]:
    progress = Progress(
        enabled=_want_progress(args.progress),
        label="coroscope trace",
        final=args.progress is True,
    )
    reader = LogReader(args.files, progress=progress)
    writer = TraceWriter(out)
    builder = TraceBuilder(
        writer, innermost=args.innermost, with_locals=args.locals, max_tasks=args.max_tasks
    )
    feed = builder.feed
    for record in reader:
        feed(record)
    builder.finish()
    writer.close(
        {
            "generator": "coroscope trace",
            "records": reader.stats.records,
            "skipped_lines": reader.stats.skipped,
            "tracks": builder.tracks,
        }
    )
    return builder, reader.stats


def run(args: argparse.Namespace) -> int:
    """Run ``coroscope trace`` with parsed arguments; returns the exit code."""
    problems = check_inputs(args.files)
    if problems:
        for problem in problems:
            print(f"coroscope trace: {problem}", file=sys.stderr)
        return 1
    output: str = args.output
    try:
        if output == "-":
            sys.stdout.flush()
            builder, stats = _convert(args, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            builder, stats = _write_file(args, output)
    except KeyboardInterrupt:
        print("\ncoroscope trace: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"coroscope trace: cannot write {output}: {exc}", file=sys.stderr)
        return 1
    for error in stats.errors:
        print(f"coroscope trace: warning: {error}", file=sys.stderr)
    if stats.records == 0:
        print("coroscope trace: warning: no coroscope records found", file=sys.stderr)
    if builder.evicted:
        print(
            f"coroscope trace: warning: {builder.evicted:,} tasks retired early "
            f"(more than --max-tasks {builder.max_tasks:,} alive at once)",
            file=sys.stderr,
        )
    if output != "-":
        print(
            f"coroscope trace: wrote {output}: {builder.writer.events:,} events on "
            f"{builder.tracks:,} tracks from {stats.records:,} records "
            f"({stats.skipped:,} lines skipped); open it at https://ui.perfetto.dev",
            file=sys.stderr,
        )
    return 0


def _write_file(args: argparse.Namespace, output: str) -> tuple[TraceBuilder, ReadStats]:
    """Write to a temporary file beside ``output`` and rename it: never a half trace."""
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".coroscope-trace-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as raw:
            if output.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as zipped:
                    result = _convert(args, zipped)
            else:
                result = _convert(args, raw)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return result


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_DESCRIPTION = (
    "Convert coroscope logs into a Chrome Trace Event file (JSON object format) that "
    "ui.perfetto.dev and chrome://tracing open: one track per task with its running and "
    "waiting spans, a loop track per event-loop thread with blocked-loop incidents.  "
    "Give the logs of one process in time order."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``trace`` subcommand to the ``coroscope`` command line."""
    parser = subparsers.add_parser(
        "trace", help="a Perfetto/Chrome trace file from coroscope logs", description=_DESCRIPTION
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``coroscope trace`` on its own: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(prog="coroscope trace", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
