"""``coroscope trace``: the Chrome Trace Event file, its tracks and its spans."""

from __future__ import annotations

import argparse
import gzip
import io
import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from coroscope.tools._places import timestamp_us
from coroscope.tools._trace import TraceBuilder, TraceWriter
from coroscope.tools._trace_cli import main, register

T0 = datetime(2026, 11, 25, 13, 0, 0, tzinfo=UTC)
BASE = timestamp_us("2026-11-25T13:00:00.000000Z") or 0
APP = "/srv/app/service.py"
AIO = "/usr/lib/python3.12/asyncio/tasks.py"
A = {"name": "fetcher", "id": 1}
B = {"name": "poller", "id": 2}
S1 = ("fetch", 10)
S2 = ("poll", 20)
S3 = ("save", 30)
SITE1 = f"{APP}:10 fetch"
SITE2 = f"{APP}:20 poll"
SITE3 = f"{APP}:30 save"


def _ts(ms: float) -> str:
    return (T0 + timedelta(microseconds=round(ms * 1000))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _us(ms: float) -> int:
    """A time in the scenario (ms after T0) as trace microseconds."""
    return BASE + round(ms * 1000)


def _frames(function: str, line: int) -> list[dict[str, Any]]:
    return [
        {"function": "main", "file": APP, "line": 1, "lasti": 0, "locals": None, "blocks": []},
        {
            "function": function,
            "file": APP,
            "line": line,
            "lasti": 10,
            "locals": {"n": line},
            "blocks": [],
            "awaits": {"type": "coroutine", "name": "sleep"},
        },
        {"function": "sleep", "file": AIO, "line": 665, "lasti": 208, "locals": None, "blocks": []},
    ]


class _Log:
    """Writes coroscope records as a log file would hold them."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.seq = 0

    def record(self, event: str, t_ms: float, *, pid: int = 100, **fields: Any) -> None:
        rec = {
            "event": event,
            "level": "info",
            "logger": "coroscope",
            "timestamp": _ts(t_ms),
            "pid": pid,
            "thread": "MainThread",
            "thread_id": 140_000,
            "seq": self.seq,
            **fields,
        }
        self.seq += 1
        self.lines.append(orjson.dumps(rec) + b"\n")

    def suspend(
        self, t: float, task: dict[str, Any], site: tuple[str, int], step: float | None, **kw: Any
    ) -> None:
        awaiting = {"type": "Future", "repr": "<Future pending cb=[Task.task_wakeup()]>"}
        self.record(
            "suspend", t, task=task, frames=_frames(*site), awaiting=awaiting, step_ms=step, **kw
        )

    def resume(
        self,
        t: float,
        task: dict[str, Any],
        site: tuple[str, int],
        waited: float | None,
        exception: str | None = None,
        **kw: Any,
    ) -> None:
        extra: dict[str, Any] = {"exception": exception} if exception else {}
        self.record("resume", t, task=task, frames=_frames(*site), waited_ms=waited, **extra, **kw)

    def data(self) -> bytes:
        return b"".join(self.lines)


def scenario() -> _Log:
    """Two tasks, one cancelled wait, a blocked loop (finished and not), and a drop."""
    log = _Log()
    log.lines.append(b"not a record\n")
    log.suspend(0, A, S1, 1.5)  # A's first step ran -1.5..0 ms
    log.suspend(0.5, B, S2, 0.5)  # B's ran 0..0.5
    log.resume(10, A, S1, 10.0)
    log.suspend(12, A, S1, 2.0)
    log.resume(20.5, B, S2, 20.0)
    log.suspend(25.5, B, S2, 5.0)
    log.resume(32, A, S1, 20.0)
    log.suspend(32.25, A, S1, 0.25)
    log.resume(62.25, A, S1, 30.0)
    log.suspend(69.25, A, S3, 7.0)
    log.resume(70, B, S2, 44.5, exception="CancelledError")
    log.resume(109.25, A, S3, 40.0)
    stack = _frames("crunch", 40)[:2]
    log.record("loop.blocked", 300, blocked_ms=100.0, task=A, stack=stack)
    log.record("loop.blocked", 310, blocked_ms=110.0, task=A, stack=stack)
    log.record("loop.unblocked", 360, blocked_ms=160.0)
    log.record("dropped", 400, count=3, reason="buffer_full")
    log.record("loop.blocked", 500, blocked_ms=50.0, task=B, stack=_frames("poll", 22)[:2])
    log.record("snapshot", 510)
    log.lines.append(b'{"event":"resume","logger":"coroscope","tim')
    return log


def validate(doc: dict[str, Any]) -> dict[tuple[int, int], str]:
    """Check a trace's structure; return the track names by (pid, tid).

    Every event has ph/ts/pid/tid; X events have dur >= 0 and do not overlap on their
    track; every track with events is named by a thread_name metadata event, every
    process by a process_name one.
    """
    assert set(doc) >= {"traceEvents", "displayTimeUnit"}
    assert doc["displayTimeUnit"] == "ms"
    names: dict[tuple[int, int], str] = {}
    processes: set[int] = set()
    spans: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    used: set[tuple[int, int]] = set()
    for ev in doc["traceEvents"]:
        for key in ("ph", "ts", "pid", "tid", "name"):
            assert key in ev, (key, ev)
        assert isinstance(ev["ts"], int)
        assert isinstance(ev["pid"], int)
        assert isinstance(ev["tid"], int)
        track = (ev["pid"], ev["tid"])
        if ev["ph"] == "M":
            if ev["name"] == "thread_name":
                assert track not in names, f"track {track} named twice"
                names[track] = ev["args"]["name"]
            elif ev["name"] == "process_name":
                processes.add(ev["pid"])
            else:
                assert ev["name"] == "thread_sort_index"
        elif ev["ph"] == "X":
            assert isinstance(ev["dur"], int)
            assert ev["dur"] >= 0
            spans[track].append((ev["ts"], ev["ts"] + ev["dur"]))
            used.add(track)
        else:
            assert ev["ph"] == "i"
            assert ev["s"] == "t"
            used.add(track)
    assert used <= set(names), f"unnamed tracks: {used - set(names)}"
    assert {pid for pid, _ in used} <= processes
    for track, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end, f"overlapping spans on {names[track]}: {intervals}"
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coroscope")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _trace(tmp_path: Path, data: bytes, *extra: str) -> dict[str, Any]:
    log = tmp_path / "in.log"
    log.write_bytes(data)
    out = tmp_path / "trace.json"
    args = _parser().parse_args(["trace", str(log), "-o", str(out), *extra])
    assert args.func(args) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _by_track(doc: dict[str, Any], names: dict[tuple[int, int], str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for ev in doc["traceEvents"]:
        if ev["ph"] != "M":
            out[names[(ev["pid"], ev["tid"])]].append(ev)
    for events in out.values():
        events.sort(key=lambda e: (e["ts"], e["ph"]))
    return out


def _spans(events: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(e["name"], e["ts"], e["ts"] + e["dur"]) for e in events if e["ph"] == "X"]


@pytest.fixture
def scenario_trace(tmp_path: Path) -> tuple[dict[str, Any], dict[tuple[int, int], str]]:
    doc = _trace(tmp_path, scenario().data())
    return doc, validate(doc)


class TestStructure:
    """The file is a valid Chrome Trace Event object with named, non-overlapping tracks."""

    def test_tracks(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """One track per task plus one loop track, all in process ``pid 100``."""
        doc, names = scenario_trace
        assert sorted(names.values()) == ["fetcher #1", "loop (MainThread)", "poller #2"]
        process = [e for e in doc["traceEvents"] if e["name"] == "process_name"]
        assert [(e["pid"], e["args"]["name"]) for e in process] == [(100, "pid 100")]
        assert doc["otherData"]["records"] == 18
        assert doc["otherData"]["skipped_lines"] == 2

    def test_sort_index_puts_loop_first(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """The loop track sorts before the task tracks, which keep their order of appearance."""
        doc, names = scenario_trace
        index = {
            names[(e["pid"], e["tid"])]: e["args"]["sort_index"]
            for e in doc["traceEvents"]
            if e["name"] == "thread_sort_index"
        }
        assert index["loop (MainThread)"] < index["fetcher #1"] < index["poller #2"]


class TestSpans:
    """Each task's timeline, computed by hand from :func:`scenario`."""

    def test_fetcher_timeline(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """fetcher alternates run/wait spans exactly at its switches, then runs to the end."""
        doc, names = scenario_trace
        spans = _spans(_by_track(doc, names)["fetcher #1"])
        wait1 = f"wait: Future at {SITE1}"
        assert spans == [
            (f"run: start -> {SITE1}", _us(-1.5), _us(0)),
            (wait1, _us(0), _us(10)),
            (f"run: {SITE1} -> {SITE1}", _us(10), _us(12)),
            (wait1, _us(12), _us(32)),
            (f"run: {SITE1} -> {SITE1}", _us(32), _us(32.25)),
            (wait1, _us(32.25), _us(62.25)),
            (f"run: {SITE1} -> {SITE3}", _us(62.25), _us(69.25)),
            (f"wait: Future at {SITE3}", _us(69.25), _us(109.25)),
            ("run (unfinished)", _us(109.25), _us(510)),
        ]

    def test_poller_timeline_and_cancellation(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """poller's last wait ends with CancelledError, recorded in the span's arguments."""
        doc, names = scenario_trace
        events = _by_track(doc, names)["poller #2"]
        wait2 = f"wait: Future at {SITE2}"
        assert _spans(events) == [
            (f"run: start -> {SITE2}", _us(0), _us(0.5)),
            (wait2, _us(0.5), _us(20.5)),
            (f"run: {SITE2} -> {SITE2}", _us(20.5), _us(25.5)),
            (wait2, _us(25.5), _us(70)),
            ("run (unfinished)", _us(70), _us(510)),
        ]
        cancelled = [e for e in events if e["ph"] == "X"][3]
        assert cancelled["cat"] == "wait"
        assert cancelled["args"]["resumed_by"] == "CancelledError"
        assert cancelled["args"]["waited_ms"] == 44.5
        assert cancelled["args"]["awaiting"] == "<Future pending cb=[Task.task_wakeup()]>"
        assert cancelled["args"]["frames"] == [f"{APP}:1 main", SITE2, f"{AIO}:665 sleep"]

    def test_run_span_arguments(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """A run span says where the step resumed, where it suspended, and its step_ms."""
        doc, names = scenario_trace
        runs = [e for e in _by_track(doc, names)["fetcher #1"] if e["cat"] == "run"]
        assert runs[3]["args"] == {"resumed_at": SITE1, "suspended_at": SITE3, "step_ms": 7.0}
        assert runs[0]["args"]["resumed_at"] is None

    def test_loop_track(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """A 160 ms incident ending at 360 ms, an unfinished one from 450 ms, three instants."""
        doc, names = scenario_trace
        events = _by_track(doc, names)["loop (MainThread)"]
        assert _spans(events) == [
            ("loop blocked", _us(200), _us(360)),
            ("loop blocked", _us(450), _us(510)),
        ]
        first, second = (e for e in events if e["ph"] == "X")
        assert first["args"]["blocked_ms"] == 160.0
        assert first["args"]["task"] == "fetcher"
        assert first["args"]["where"] == f"{APP}:40 crunch"
        assert second["args"]["unfinished"] == "end of log"
        instants = [(e["name"], e["ts"]) for e in events if e["ph"] == "i"]
        assert instants == [
            ("loop blocked", _us(300)),
            ("loop blocked", _us(310)),
            ("dropped 3 (buffer_full)", _us(400)),
            ("loop blocked", _us(500)),
        ]

    def test_blocking_task_marked(
        self, scenario_trace: tuple[dict[str, Any], dict[tuple[int, int], str]]
    ) -> None:
        """The task named by ``loop.blocked`` gets an instant on its own track."""
        doc, names = scenario_trace
        marks = [e for e in _by_track(doc, names)["fetcher #1"] if e["ph"] == "i"]
        assert [(e["name"], e["ts"]) for e in marks] == [
            ("blocking the loop", _us(300)),
            ("blocking the loop", _us(310)),
        ]


class TestEdgeCases:
    """Logs that start mid-wait, reuse ids, end tasks, or disagree with themselves."""

    def test_resume_without_suspend(self, tmp_path: Path) -> None:
        """A log starting mid-wait gets the wait from ``waited_ms`` before the resume."""
        log = _Log()
        log.resume(100, A, S1, 30.0)
        log.suspend(105, A, S1, 5.0)
        doc = _trace(tmp_path, log.data())
        names = validate(doc)
        assert _spans(_by_track(doc, names)["fetcher #1"]) == [
            (f"wait: ? at {SITE1}", _us(70), _us(100)),
            (f"run: {SITE1} -> {SITE1}", _us(100), _us(105)),
            (f"wait: Future at {SITE1} (unfinished)", _us(105), _us(105)),
        ]

    def test_sparse_log_uses_record_fields(self, tmp_path: Path) -> None:
        """Lacking neighbouring switches, record fields (resumed_at, awaiting) label the spans."""
        log = _Log()
        where = {"function": "crunch", "file": APP, "line": 40}
        log.suspend(10, A, S1, 4.0, level="warning", slow="step", resumed_at=where)
        log.record(
            "resume",
            50,
            task=B,
            frames=_frames(*S2),
            awaiting={"type": "Task", "repr": "<Task pending name='x'>"},
            waited_ms=20.0,
        )
        doc = _trace(tmp_path, log.data())
        tracks = _by_track(doc, validate(doc))
        (run, _) = [e for e in tracks["fetcher #1"] if e["ph"] == "X"]
        assert (run["ts"], run["dur"]) == (_us(6), 4000)
        assert run["args"]["resumed_at"] == f"{APP}:40 crunch"
        assert run["args"]["slow"] == "step"
        wait = next(e for e in tracks["poller #2"] if e["ph"] == "X")
        assert (wait["name"], wait["ts"], wait["dur"]) == (f"wait: Task at {SITE2}", _us(30), 20000)
        assert wait["args"]["awaiting"] == "<Task pending name='x'>"

    def test_inconsistent_steps_never_overlap(self, tmp_path: Path) -> None:
        """A step reaching back before the previous switch is clipped at the previous span."""
        log = _Log()
        log.resume(100, A, S1, 1.0)
        log.suspend(101, A, S1, 0.5)
        log.suspend(102, A, S1, 50.0)  # its resume was lost, and its step reaches far back
        doc = _trace(tmp_path, log.data())
        events = [e for e in _by_track(doc, validate(doc))["fetcher #1"] if e["ph"] == "X"]
        assert _spans(events)[2:4] == [
            (f"wait: Future at {SITE1}", _us(101), _us(101)),
            (f"run: ? -> {SITE1}", _us(101), _us(102)),
        ]
        assert events[2]["args"]["unfinished"] == "resume not in the log"

    def test_lost_suspend(self, tmp_path: Path) -> None:
        """Two resumes in a row (a dropped suspend): the run ends where the second wait began."""
        log = _Log()
        log.resume(10, A, S1, 10.0)
        log.resume(30, A, S2, 5.0)
        doc = _trace(tmp_path, log.data())
        events = [e for e in _by_track(doc, validate(doc))["fetcher #1"] if e["ph"] == "X"]
        assert _spans(events) == [
            (f"wait: ? at {SITE1}", _us(0), _us(10)),
            ("run (unfinished)", _us(10), _us(25)),
            (f"wait: ? at {SITE2}", _us(25), _us(30)),
            ("run (unfinished)", _us(30), _us(30)),
        ]
        assert events[1]["args"]["unfinished"] == "suspend not in the log"

    def test_reused_id_gets_new_track(self, tmp_path: Path) -> None:
        """An id seen again under another name is another task: a second named track."""
        log = _Log()
        log.suspend(0, {"name": "first", "id": 9}, S1, 1.0)
        log.suspend(5, {"name": "second", "id": 9}, S1, 1.0)
        doc = _trace(tmp_path, log.data())
        names = validate(doc)
        assert sorted(names.values()) == ["first #9", "second #9"]
        first = _spans(_by_track(doc, names)["first #9"])
        assert first[-1] == (f"wait: Future at {SITE1} (unfinished)", _us(0), _us(5))

    def test_task_done_closes_track(self, tmp_path: Path) -> None:
        """``task.done`` ends the running span and marks the outcome; a later record restarts."""
        log = _Log()
        log.resume(10, A, S1, 10.0)
        log.record("task.done", 12, task=A, outcome="ok", age_ms=12.0, cancelled_at=_frames(*S3))
        log.record("snapshot", 20)
        doc = _trace(tmp_path, log.data())
        events = _by_track(doc, validate(doc))["fetcher #1"]
        assert _spans(events)[-1] == ("run: done (ok)", _us(10), _us(12))
        (done,) = [e for e in events if e["ph"] == "i"]
        assert (done["name"], done["ts"], done["args"]["age_ms"]) == ("done: ok", _us(12), 12.0)
        assert done["args"]["cancelled_at"] == SITE3

    def test_max_tasks_bound(self, tmp_path: Path) -> None:
        """Beyond ``--max-tasks`` the oldest task's open span is closed; the file stays valid."""
        log = _Log()
        for i in range(5):
            log.suspend(i, {"name": f"t{i}", "id": i}, S1, 0.5)
        doc = _trace(tmp_path, log.data(), "--max-tasks", "2")
        names = validate(doc)
        assert len(names) == 5
        waits = [e for e in doc["traceEvents"] if e.get("cat") == "wait"]
        assert (
            sorted(e["args"]["unfinished"] for e in waits) == ["end of log"] * 2 + ["evicted"] * 3
        )

    def test_locals_option(self, tmp_path: Path) -> None:
        """``--locals`` adds the waiting frame's locals to the wait span."""
        log = _Log()
        log.suspend(0, A, S2, 1.0)
        log.resume(5, A, S2, 5.0)
        doc = _trace(tmp_path, log.data(), "--locals")
        (wait,) = [e for e in doc["traceEvents"] if e.get("cat") == "wait"]
        assert wait["args"]["locals"] == {"n": 20}


class TestOutput:
    """Where the trace goes: a file (atomically), gzip, or stdout."""

    def test_gzip_output(self, tmp_path: Path) -> None:
        """A ``.gz`` output is a gzip of the same JSON document."""
        log = tmp_path / "in.log"
        log.write_bytes(scenario().data())
        plain, packed = tmp_path / "t.json", tmp_path / "t.json.gz"
        assert main([str(log), "-o", str(plain)]) == 0
        assert main([str(log), "-o", str(packed)]) == 0
        assert json.loads(gzip.decompress(packed.read_bytes())) == json.loads(plain.read_text())
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".coroscope-trace-")]

    def test_stdout(self, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
        """``-o -`` writes the trace to standard output."""
        log = tmp_path / "in.log"
        log.write_bytes(scenario().data())
        assert main([str(log), "-o", "-"]) == 0
        doc = json.loads(capsysbinary.readouterr().out)
        assert sorted(validate(doc).values()) == ["fetcher #1", "loop (MainThread)", "poller #2"]

    def test_missing_input(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing input exits 1 without creating the output."""
        out = tmp_path / "t.json"
        assert main([str(tmp_path / "nope.log"), "-o", str(out)]) == 1
        assert "nope.log" in capsys.readouterr().err
        assert not out.exists()

    def test_writer_streams(self) -> None:
        """The writer emits a parseable document around events written one at a time."""
        buf = io.BytesIO()
        writer = TraceWriter(buf)
        builder = TraceBuilder(writer)
        for line in scenario().lines[1:-1]:
            builder.feed(orjson.loads(line))
        written = len(buf.getvalue())
        assert written > 1000  # events went out before the end
        builder.finish()
        writer.close({"x": 1})
        doc = json.loads(buf.getvalue())
        assert doc["otherData"] == {"x": 1}
        validate(doc)
