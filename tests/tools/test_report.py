"""``coroscope report``: numbers checked against a small log computed by hand."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroscope.tools import _stats
from coroscope.tools._report import ReportBuilder
from coroscope.tools._report_cli import main, register
from coroscope.tools._report_text import render_text
from coroscope.tools._stats import EXACT_LIMIT, RELATIVE_ERROR, QuantileSketch, SeqTracker

T0 = datetime(2026, 11, 25, 13, 0, 0, tzinfo=UTC)
APP = "/srv/app/service.py"
AIO = "/usr/lib/python3.12/asyncio/tasks.py"
A = {"name": "fetcher", "id": 1}
B = {"name": "poller", "id": 2}
C = {"name": "idler", "id": 3}
S1 = ("fetch", 10)
S2 = ("poll", 20)
S3 = ("save", 30)
SITE1 = f"{APP}:10 fetch"
SITE2 = f"{APP}:20 poll"
SITE3 = f"{APP}:30 save"


def _ts(ms: float) -> str:
    return (T0 + timedelta(microseconds=round(ms * 1000))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _frames(function: str, line: int) -> list[dict[str, Any]]:
    """main -> <function> (at ``line``) -> asyncio's sleep, as the capture writes them."""
    return [
        {
            "function": "main",
            "file": APP,
            "line": 1,
            "lasti": 0,
            "locals": None,
            "blocks": [],
            "awaits": {"type": "coroutine", "name": function},
        },
        {
            "function": function,
            "file": APP,
            "line": line,
            "lasti": 10,
            "locals": {"n": 1},
            "blocks": [{"kind": "while", "line": line - 1}],
            "awaits": {"type": "coroutine", "name": "sleep"},
        },
        {
            "function": "sleep",
            "file": AIO,
            "line": 665,
            "lasti": 208,
            "locals": None,
            "blocks": [{"kind": "try", "line": 664}],
            "awaits": {"type": "Future", "name": None},
        },
    ]


class _Log:
    """Writes coroscope records (and other lines) as a log file would hold them."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self._seq: dict[int, int] = {}

    def record(
        self, event: str, t_ms: float, *, pid: int = 100, seq: int | None = None, **fields: Any
    ) -> None:
        if seq is None:
            seq = self._seq.get(pid, 0)
        self._seq[pid] = max(self._seq.get(pid, 0), seq + 1)
        rec = {
            "event": event,
            "level": "info",
            "logger": "coroscope",
            "timestamp": _ts(t_ms),
            "pid": pid,
            "thread": "MainThread",
            "thread_id": 140_000,
            "seq": seq,
            **fields,
        }
        self.lines.append(orjson.dumps(rec) + b"\n")

    def suspend(
        self, t: float, task: dict[str, Any], site: tuple[str, int], step: float | None, **kw: Any
    ) -> None:
        awaiting = {"type": "Future", "repr": "<Future pending>"}
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

    def skip_seq(self, n: int, pid: int = 100) -> None:
        self._seq[pid] = self._seq.get(pid, 0) + n

    def raw(self, line: bytes) -> None:
        self.lines.append(line)

    def data(self) -> bytes:
        return b"".join(self.lines)


def scenario() -> _Log:
    """The hand-computed log the tests check against (numbers in the tests' docstrings)."""
    log = _Log()
    log.raw(b'{"event": "request served", "logger": "app", "status": 200}\n')
    log.suspend(0, A, S1, 1.5)  # seq 0: first step of A, no resume before it
    log.suspend(0.5, B, S2, 0.5)  # seq 1
    log.resume(10, A, S1, 10.0)  # seq 2
    log.raw(b"WARNING something printed to the same stream\n")
    log.suspend(12, A, S1, 2.0)  # seq 3
    log.resume(20.5, B, S2, 20.0)  # seq 4
    log.skip_seq(2)  # seq 5, 6 lost
    log.suspend(25.5, B, S2, 5.0)  # seq 7
    log.resume(32, A, S1, 20.0)  # seq 8
    log.suspend(32.25, A, S1, 0.25, seq=10)  # written before seq 9: out of order, not lost
    log.record("mystery.event", 40, seq=9)
    log.resume(62.25, A, S1, 30.0)  # seq 11
    log.suspend(69.25, A, S3, 7.0)  # seq 12: A resumed at S1 and ran 7 ms to S3
    log.resume(70, B, S2, 44.5, exception="CancelledError")  # seq 13
    log.suspend(72, C, S3, 0.1)  # seq 14: C waits at S3 until the end
    log.record("dropped", 75, count=3, reason="buffer_full")  # seq 15
    log.resume(109.25, A, S3, 40.0)  # seq 16
    stack = _frames("crunch", 40)[:2]
    log.record("loop.blocked", 300, blocked_ms=100.0, task=A, stack=stack)  # seq 17
    log.record("loop.blocked", 310, blocked_ms=110.0, task=A, stack=stack)  # seq 18
    log.record("loop.unblocked", 360, blocked_ms=160.0)  # seq 19
    log.record("dropped", 400, count=2, reason="sink_error")  # seq 20
    log.skip_seq(1)  # seq 21 lost
    log.record("dropped", 450, count=4, reason="buffer_full")  # seq 22
    log.record("loop.blocked", 500, blocked_ms=50.0, task=B, stack=_frames("poll", 22)[:2])
    log.record("snapshot", 505, pid=200, seq=10)
    log.record("snapshot", 506, pid=200, seq=13)
    log.raw(b'{"event":"suspend","level":"info","logger":"coroscope","timest')
    return log


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coroscope")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = _parser().parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def _report_json(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code, out, err = _run_cli(["report", str(path), "--json", *extra], capsys)
    assert code == 0, err
    result: dict[str, Any] = orjson.loads(out)
    return result


@pytest.fixture
def scenario_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    path = tmp_path / "scenario.log"
    path.write_bytes(scenario().data())
    return _report_json(path, capsys)


class TestHandComputed:
    """Every number of the report of :func:`scenario`, computed by hand."""

    def test_await_sites(self, scenario_result: dict[str, Any]) -> None:
        """S1 waits 10/20/30, S2 20/44.5 (one cancelled), S3 40; ordered by total wait."""
        sites = scenario_result["await_sites"]
        assert [s["site"] for s in sites] == [SITE2, SITE1, SITE3]
        s2, s1, s3 = sites
        assert (s1["waits"], s1["total_ms"], s1["mean_ms"]) == (3, 60.0, 20.0)
        assert (s1["p50_ms"], s1["p99_ms"], s1["max_ms"]) == (20.0, 30.0, 30.0)
        assert (s1["suspends"], s1["resumes"], s1["awaiting"]) == (3, 3, {"Future": 3})
        assert (s2["waits"], s2["total_ms"], s2["mean_ms"]) == (2, 64.5, 32.25)
        assert (s2["p50_ms"], s2["p99_ms"], s2["max_ms"]) == (20.0, 44.5, 44.5)
        assert s2["exceptions"] == {"CancelledError": 1}
        assert (s3["waits"], s3["total_ms"], s3["p50_ms"], s3["p99_ms"]) == (1, 40.0, 40.0, 40.0)
        assert (s3["suspends"], s3["waiting_at_end"]) == (2, 1)  # C is still waiting there
        assert all(s["exact"] for s in sites)
        assert scenario_result["await_sites_total"] == 3

    def test_overall_waits_and_steps(self, scenario_result: dict[str, Any]) -> None:
        """Waits 10,20,20,30,40,44.5: p50 20, p99 44.5; steps 0.1..7: p50 1.5, p99 7."""
        waits, steps = scenario_result["waits"], scenario_result["steps"]
        assert (waits["count"], waits["total_ms"], waits["p50_ms"], waits["p99_ms"]) == (
            6,
            164.5,
            20.0,
            44.5,
        )
        assert (steps["count"], steps["total_ms"], steps["p50_ms"], steps["p99_ms"]) == (
            7,
            16.35,
            1.5,
            7.0,
        )
        assert steps["max_ms"] == 7.0

    def test_slowest_steps(self, scenario_result: dict[str, Any]) -> None:
        """Steps sorted by length, each with the site it resumed at and the one it yielded at."""
        steps = scenario_result["slowest_steps"]
        assert [s["step_ms"] for s in steps] == [7.0, 5.0, 2.0, 1.5, 0.5, 0.25, 0.1]
        assert steps[0] == {
            "step_ms": 7.0,
            "pid": 100,
            "task": "fetcher",
            "task_id": 1,
            "resumed_at": SITE1,
            "suspended_at": SITE3,
            "timestamp": _ts(69.25),
        }
        assert (steps[1]["task"], steps[1]["resumed_at"], steps[1]["suspended_at"]) == (
            "poller",
            SITE2,
            SITE2,
        )
        assert steps[3]["resumed_at"] is None  # A's first step: no resume before it
        assert steps[5]["resumed_at"] == SITE1

    def test_tasks(self, scenario_result: dict[str, Any]) -> None:
        """fetcher: 4 switches, 10.75 ms run, 100 ms wait; poller 2, 5.5, 64.5; idler 1, 0.1, 0."""
        tasks = scenario_result["tasks"]
        assert (tasks["seen"], tasks["evicted"], tasks["sort"]) == (3, 0, "run")
        rows = [
            (t["name"], t["task_id"], t["switches"], t["run_ms"], t["wait_ms"])
            for t in tasks["top"]
        ]
        assert rows == [
            ("fetcher", 1, 4, 10.75, 100.0),
            ("poller", 2, 2, 5.5, 64.5),
            ("idler", 3, 1, 0.1, 0.0),
        ]
        fetcher, poller, idler = tasks["top"]
        assert (fetcher["first_seen"], fetcher["last_seen"]) == (_ts(0), _ts(109.25))
        assert (poller["first_seen"], poller["last_seen"], poller["exceptions"]) == (
            _ts(0.5),
            _ts(70),
            1,
        )
        assert (idler["first_seen"], idler["last_seen"], idler["waiting_at"]) == (
            _ts(72),
            _ts(72),
            SITE3,
        )

    def test_blocked_loop(self, scenario_result: dict[str, Any]) -> None:
        """One 160 ms incident (two warnings, then unblocked) and one unfinished 50 ms one."""
        blocked = scenario_result["blocked"]
        assert (blocked["incidents"], blocked["unfinished"], blocked["total_ms"]) == (2, 1, 210.0)
        first, second = blocked["longest"]
        assert first == {
            "blocked_ms": 160.0,
            "pid": 100,
            "thread": "MainThread",
            "task": "fetcher",
            "where": f"{APP}:40 crunch",
            "timestamp": _ts(300),
            "unfinished": False,
        }
        assert (second["blocked_ms"], second["task"], second["unfinished"]) == (
            50.0,
            "poller",
            True,
        )
        assert second["where"] == f"{APP}:22 poll"

    def test_drops(self, scenario_result: dict[str, Any]) -> None:
        """9 records reported dropped; seq 5, 6, 21 of pid 100 and 11, 12 of pid 200 missing."""
        drops = scenario_result["drops"]
        assert (drops["reported"], drops["by_reason"]) == (9, {"buffer_full": 7, "sink_error": 2})
        assert drops["missing_seq"] == 5
        assert drops["seq"] == [
            {"pid": 100, "first": 0, "last": 23, "records": 21, "missing": 3, "duplicates": 0},
            {"pid": 200, "first": 10, "last": 13, "records": 2, "missing": 2, "duplicates": 0},
        ]

    def test_input_and_events(self, scenario_result: dict[str, Any]) -> None:
        """23 records; one foreign, one non-JSON and one truncated line skipped; events counted."""
        inp = scenario_result["input"]
        assert (inp["records"], inp["lines"]) == (23, 26)
        assert inp["skipped"] == {
            "total": 3,
            "foreign": 1,
            "invalid": 1,
            "truncated": 1,
            "oversize": 0,
        }
        assert scenario_result["events"] == {
            "suspend": 7,
            "resume": 6,
            "dropped": 3,
            "loop.blocked": 3,
            "snapshot": 2,
            "loop.unblocked": 1,
            "mystery.event": 1,
        }
        assert scenario_result["unknown_events"] == {"mystery.event": 1}
        assert scenario_result["span"] == {"first": _ts(0), "last": _ts(506), "seconds": 0.506}

    def test_text_report(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The text tables show the same numbers, one row per site, task and incident."""
        path = tmp_path / "scenario.log"
        path.write_bytes(scenario().data())
        code, out, _ = _run_cli(["report", str(path)], capsys)
        assert code == 0
        sites = out.split("Await sites")[1].split("Slowest steps")[0]
        rows = {ln.split()[-1]: " ".join(ln.split()[:-2]) for ln in sites.splitlines() if APP in ln}
        assert rows["poll"] == "64.500 2 32.250 20.000 44.500 44.500 1 Future"
        assert rows["fetch"] == "60.000 3 20.000 20.000 30.000 30.000 Future"
        assert rows["save"] == "40.000 1 40.000 40.000 40.000 40.000 1 Future"
        tasks = {" ".join(line.split()[:6]) for line in out.split("Tasks by")[1].splitlines()}
        assert "fetcher #1 100 4 10.750 100.000" in tasks
        assert "idler #3 100 1 0.100 0.000" in tasks
        assert "Blocked loop: 2 incident(s), 210.000 ms in total, 1 unfinished" in out
        assert "Drops: 9 record(s) reported dropped (buffer_full 7, sink_error 2); 5 missing" in out
        assert "skipped lines: 3 (1 foreign, 1 invalid, 1 truncated, 0 oversize)" in out
        assert "not understood (counted only): mystery.event" in out


class TestInputs:
    """The same log read compressed, from stdin or split in two gives the same report."""

    def test_gzip_stdin_and_split_files_agree(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Plain, gzip, stdin and two files holding halves of the log: identical tables."""
        data = scenario().data()
        plain, packed = tmp_path / "a.log", tmp_path / "a.log.gz"
        plain.write_bytes(data)
        packed.write_bytes(gzip.compress(data))
        cut = data.index(b"\n", len(data) // 2) + 1
        first, second = tmp_path / "1.log", tmp_path / "2.log"
        first.write_bytes(data[:cut])
        second.write_bytes(data[cut:])

        def tables(result: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in result.items() if k != "input"}

        expected = tables(_report_json(plain, capsys))
        assert tables(_report_json(packed, capsys)) == expected
        code, out, _ = _run_cli(["report", str(first), str(second), "--json"], capsys)
        assert code == 0
        assert tables(orjson.loads(out)) == expected

        stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(gzip.compress(data))))
        monkeypatch.setattr(sys, "stdin", stdin)
        code, out, _ = _run_cli(["report", "-", "--json"], capsys)
        assert code == 0
        assert tables(orjson.loads(out)) == expected


class TestOptions:
    """Command-line options change what the tables show."""

    def test_top_limits_rows(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """``--top 2`` keeps the two biggest of each table."""
        path = tmp_path / "s.log"
        path.write_bytes(scenario().data())
        result = _report_json(path, capsys, "--top", "2")
        assert [s["site"] for s in result["await_sites"]] == [SITE2, SITE1]
        assert [s["step_ms"] for s in result["slowest_steps"]] == [7.0, 5.0]
        assert [t["name"] for t in result["tasks"]["top"]] == ["fetcher", "poller"]
        assert result["await_sites_total"] == 3

    def test_innermost_uses_asyncio_frame(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--innermost`` puts every wait at asyncio's ``sleep`` line: one site, all waits."""
        path = tmp_path / "s.log"
        path.write_bytes(scenario().data())
        result = _report_json(path, capsys, "--innermost")
        (site,) = result["await_sites"]
        assert (site["site"], site["waits"], site["total_ms"]) == (f"{AIO}:665 sleep", 6, 164.5)

    def test_sort_orders(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Sites by p99 put S2 (44.5) before S3 (40) and S1 (30); tasks by switches."""
        path = tmp_path / "s.log"
        path.write_bytes(scenario().data())
        result = _report_json(path, capsys, "--sort-sites", "p99", "--sort-tasks", "wait")
        assert [s["site"] for s in result["await_sites"]] == [SITE2, SITE3, SITE1]
        assert [t["wait_ms"] for t in result["tasks"]["top"]] == [100.0, 64.5, 0.0]


class TestQuantiles:
    """Exact quantiles for small samples, within 1% beyond :data:`EXACT_LIMIT`."""

    def test_exact_nearest_rank(self) -> None:
        """p50 of 1..4 is 2 and p99 is 4 (nearest rank), exactly."""
        sketch = QuantileSketch()
        for v in (4.0, 1.0, 3.0, 2.0):
            sketch.add(v)
        assert (sketch.quantile(50), sketch.quantile(99), sketch.quantile(100)) == (2.0, 4.0, 4.0)
        assert sketch.exact
        assert QuantileSketch().quantile(50) is None

    def test_switches_to_buckets_after_limit(self) -> None:
        """The sketch is exact for EXACT_LIMIT values and estimated after one more."""
        sketch = QuantileSketch()
        for i in range(EXACT_LIMIT):
            sketch.add(float(i + 1))
        exact_before = sketch.exact
        assert sketch.quantile(50) == 500.0
        sketch.add(1001.0)
        assert (exact_before, sketch.exact) == (True, False)
        estimate = sketch.quantile(50)
        assert estimate is not None
        assert abs(estimate - 501.0) <= RELATIVE_ERROR * 501.0
        assert (sketch.count, sketch.total, sketch.min, sketch.max) == (1001, 501501.0, 1.0, 1001.0)

    @pytest.mark.parametrize("seed", range(5))
    def test_large_samples_within_one_percent(self, seed: int) -> None:
        """On 20,000 log-normal waits every reported percentile is within 1% of the true one."""
        rng = random.Random(seed)
        values = [rng.lognormvariate(0, 2.5) for _ in range(20_000)] + [0.0] * 100
        sketch = QuantileSketch()
        for v in values:
            sketch.add(v)
        ordered = sorted(values)
        for percent in (1, 10, 50, 90, 99, 100):
            true = ordered[(percent * len(values) + 99) // 100 - 1]
            estimate = sketch.quantile(percent)
            assert estimate is not None
            assert abs(estimate - true) <= RELATIVE_ERROR * true + 1e-12, percent

    @settings(max_examples=60, deadline=None)
    @given(
        values=st.lists(
            st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=200
        ),
        percent=st.integers(min_value=1, max_value=100),
    )
    def test_bucket_error_bound_property(self, values: list[float], percent: int) -> None:
        """With buckets from the first value, any percentile is within 1% (or tiny) of exact."""
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_stats, "EXACT_LIMIT", 0)
            sketch = QuantileSketch()
            for v in values:
                sketch.add(v)
        assert not sketch.exact
        true = sorted(values)[(percent * len(values) + 99) // 100 - 1]
        estimate = sketch.quantile(percent)
        assert estimate is not None
        assert abs(estimate - true) <= RELATIVE_ERROR * true + 1e-9


class TestSeqTracker:
    """Missing ``seq`` numbers, with reordering, in bounded memory."""

    @settings(max_examples=80, deadline=None)
    @given(
        n=st.integers(min_value=1, max_value=300),
        data=st.data(),
    )
    def test_matches_set_model(self, n: int, data: st.DataObject) -> None:
        """Numbers lost at random and swapped locally: missing = lost between first and last."""
        kept = [i for i in range(n) if not data.draw(st.booleans(), label=f"lose {i}")] or [0]
        order = list(kept)
        for i in range(len(order) - 1):
            if data.draw(st.integers(0, 3), label=f"swap {i}") == 0:
                order[i], order[i + 1] = order[i + 1], order[i]
        tracker = SeqTracker()
        for seq in order:
            tracker.add(seq)
        expected = (max(kept) - min(kept) + 1) - len(set(kept))
        assert (tracker.missing, tracker.first, tracker.last) == (expected, min(kept), max(kept))
        assert (tracker.duplicates, tracker.seen) == (0, len(kept))

    def test_duplicates_counted(self) -> None:
        """A number seen twice is a duplicate, not a gap."""
        tracker = SeqTracker()
        for seq in (0, 1, 1, 2, 5, 5):
            tracker.add(seq)
        assert (tracker.missing, tracker.duplicates) == (2, 2)

    def test_memory_bounded_by_compaction(self) -> None:
        """Ten thousand holes keep at most ``max_intervals`` intervals and are all counted."""
        tracker = SeqTracker(max_intervals=8)
        for seq in range(0, 20_000, 2):
            tracker.add(seq)
        assert len(tracker._starts) <= 8
        assert tracker.missing == 9_999


class TestBoundedTasks:
    """The task table holds a bounded number of tasks and still ranks correctly."""

    def test_eviction_keeps_top_by_run_time(self) -> None:
        """Ten tasks through a 2-task window: 8 retired early, top 3 still the biggest runners."""
        builder = ReportBuilder(top=3, max_tasks=2)
        log = _Log()
        for i in range(10):
            task = {"name": f"t{i}", "id": i}
            log.suspend(i, task, S1, float((i * 7) % 10))  # run times 0,7,4,1,8,5,2,9,6,3
        for line in log.lines:
            builder.feed(orjson.loads(line))
            assert len(builder.tasks) <= 2
        result = builder.result()
        assert (result["tasks"]["seen"], result["tasks"]["evicted"]) == (10, 8)
        assert [t["run_ms"] for t in result["tasks"]["top"]] == [9.0, 8.0, 7.0]

    def test_reused_id_with_new_name_is_a_new_task(self) -> None:
        """An id seen again under another name starts a new row (ids outlive their tasks)."""
        builder = ReportBuilder()
        log = _Log()
        log.suspend(0, {"name": "old", "id": 5}, S1, 1.0)
        log.suspend(1, {"name": "new", "id": 5}, S1, 2.0)
        for line in log.lines:
            builder.feed(orjson.loads(line))
        rows = [(t["name"], t["run_ms"]) for t in builder.result()["tasks"]["top"]]
        assert rows == [("new", 2.0), ("old", 1.0)]

    def test_task_done_records_outcome(self) -> None:
        """``task.done`` ends a task with its outcome; one known only from it takes its totals."""
        builder = ReportBuilder()
        log = _Log()
        log.suspend(0, A, S1, 1.0)
        log.record("task.done", 5, task=A, outcome="cancelled", age_ms=5.0)
        log.record("task.done", 6, task=B, outcome="ok", switches=3, run_ms=2.0, wait_ms=4.0)
        for line in log.lines:
            builder.feed(orjson.loads(line))
        result = builder.result()
        rows = [
            (t["name"], t["switches"], t["run_ms"], t["outcome"]) for t in result["tasks"]["top"]
        ]
        assert rows == [("poller", 3, 2.0, "ok"), ("fetcher", 1, 1.0, "cancelled")]
        assert result["tasks"]["outcomes"] == {"cancelled": 1, "ok": 1}
        assert result["unknown_events"] == {}


class TestSparseCapture:
    """Logs that hold only some switches (slow-only capture, sampling)."""

    def test_slow_step_without_its_resume(self) -> None:
        """A flagged slow step whose resume is not logged takes ``resumed_at`` from its record."""
        builder = ReportBuilder()
        log = _Log()
        where = {"function": "crunch", "file": APP, "line": 40}
        log.suspend(5, A, S1, 12.5, level="warning", slow="step", resumed_at=where)
        for line in log.lines:
            builder.feed(orjson.loads(line))
        result = builder.result()
        (step,) = result["slowest_steps"]
        assert (step["step_ms"], step["resumed_at"], step["suspended_at"]) == (
            12.5,
            f"{APP}:40 crunch",
            SITE1,
        )
        assert result["alerts"] == {"slow_step": 1, "stuck": 0}
        assert "flagged by the capture: 1 slow step(s)" in render_text(result)

    def test_seen_resume_wins_over_record(self) -> None:
        """When the resume is in the log, its (innermost user frame) site is used."""
        builder = ReportBuilder()
        log = _Log()
        log.resume(0, A, S2, 1.0)
        where = {"function": "main", "file": APP, "line": 1}
        log.suspend(5, A, S1, 5.0, slow="step", resumed_at=where)
        for line in log.lines:
            builder.feed(orjson.loads(line))
        assert builder.result()["slowest_steps"][0]["resumed_at"] == SITE2


class TestBoundedSites:
    """Await sites past ``max_sites`` share one ``<other>`` row."""

    def test_sites_beyond_the_limit_are_pooled(self) -> None:
        """With room for two sites, the third's waits and open tasks land in ``<other>``."""
        builder = ReportBuilder(max_sites=2)
        log = _Log()
        log.suspend(0, A, S1, 1.0)
        log.resume(1, A, S1, 1.0)
        log.suspend(2, B, S2, 1.0)
        log.resume(3, B, S2, 2.0)
        log.suspend(4, C, S3, 1.0)  # a third site: pooled, and still waiting at the end
        log.resume(5, A, S3, 4.0)
        for line in log.lines:
            builder.feed(orjson.loads(line))
        sites = {s["site"]: s for s in builder.result()["await_sites"]}
        assert set(sites) == {SITE1, SITE2, "<other>"}
        assert (sites["<other>"]["waits"], sites["<other>"]["total_ms"]) == (1, 4.0)
        assert sites["<other>"]["waiting_at_end"] == 1


class TestCli:
    """Exit codes, messages and progress of the command."""

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing input is an error (exit 1) named on stderr, before reading anything."""
        good = tmp_path / "ok.log"
        good.write_bytes(scenario().data())
        code, out, err = _run_cli(["report", str(good), str(tmp_path / "missing.log")], capsys)
        assert (code, out) == (1, "")
        assert "coroscope report:" in err
        assert "missing.log" in err

    def test_empty_input_warns(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An input without records still prints (empty) tables and warns on stderr."""
        path = tmp_path / "empty.log"
        path.write_bytes(b"hello\n")
        code, out, err = _run_cli(["report", str(path)], capsys)
        assert code == 0
        assert "Await sites by total wait (top 0 of 0)" in out
        assert "no coroscope records found" in err

    def test_progress_only_when_asked(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Nothing on stderr by default off a terminal; ``--progress`` shows MB read."""
        path = tmp_path / "s.log"
        path.write_bytes(scenario().data())
        _, _, err = _run_cli(["report", str(path)], capsys)
        assert err == ""
        _, _, err = _run_cli(["report", str(path), "--progress"], capsys)
        assert "coroscope report: " in err
        assert " MB" in err
        assert "23 records" in err

    def test_main_entry_point(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """``main(argv)`` runs the command without a parent parser."""
        path = tmp_path / "s.log"
        path.write_bytes(scenario().data())
        assert main([str(path), "--top", "1"]) == 0
        out = capsys.readouterr().out
        assert "Await sites by total wait (top 1 of 3)" in out

    def test_bad_top_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--top 0`` is refused by argparse (exit 2)."""
        with pytest.raises(SystemExit) as exc:
            _parser().parse_args(["report", "x.log", "--top", "0"])
        assert exc.value.code == 2
        assert "greater than 0" in capsys.readouterr().err


class TestRealCapture:
    """A log captured from a real asyncio program reads back consistently."""

    def test_report_of_captured_program(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every resume's wait lands on a site in this file; run and wait times add up."""
        from coroscope.testing import capture_records
        from helpers import joined

        async def sleeper(n: int) -> None:
            for _ in range(n):
                await asyncio.sleep(0.002)  # sleeper-await

        async def program() -> None:
            await asyncio.gather(sleeper(3), sleeper(5))

        with capture_records() as records:
            asyncio.run(program())
        assert records, "the capture wrote no records"
        path = tmp_path / "real.log"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        result = _report_json(path, capsys)

        expected: dict[str, list[float]] = {}  # the obvious way: innermost frame outside asyncio
        for r in joined(records):
            if r["event"] == "resume" and r.get("waited_ms") is not None:
                user = [f for f in r["frames"] if "/asyncio/" not in f["file"]] or r["frames"]
                site = f"{user[-1]['file']}:{user[-1]['line']} {user[-1]['function']}"
                expected.setdefault(site, []).append(r["waited_ms"])
        got = {s["site"]: (s["waits"], s["total_ms"]) for s in result["await_sites"] if s["waits"]}
        assert got == {k: (len(v), round(sum(v), 3)) for k, v in expected.items()}
        sleeper_sites = [s for s in got if s.endswith(".sleeper")]
        assert len(sleeper_sites) == 1
        assert sleeper_sites[0].startswith(f"{__file__}:")
        assert sleeper_sites[0][-40:] in render_text(result)
        assert result["input"]["records"] == len(records)
        assert result["drops"]["missing_seq"] == 0


class TestStuckTasks:
    """The "Stuck tasks" table: per task, its longest reported wait and where it waits."""

    def test_longest_wait_per_task_first(self) -> None:
        log = _Log()
        awaiting = {"type": "Future", "repr": "<Future pending>"}
        log.record(
            "task.stuck", 1000, task=A, frames=_frames(*S1), awaiting=awaiting, suspended_s=30.2
        )
        log.record(
            "task.stuck", 2000, task=B, frames=_frames(*S2), awaiting=awaiting, suspended_s=31.0
        )
        log.record(
            "task.stuck", 3000, task=A, frames=_frames(*S1), awaiting=awaiting, suspended_s=60.5
        )
        builder = ReportBuilder()
        for line in log.lines:
            builder.feed(orjson.loads(line))
        result = builder.result()
        assert [(t["task"], t["suspended_s"], t["reports"]) for t in result["stuck"]] == [
            ("fetcher", 60.5, 2),
            ("poller", 31.0, 1),
        ]
        assert result["stuck"][0]["where"] == f"{AIO}:665 sleep"
        assert result["stuck"][0]["first_reported"] == _ts(1000)
        text = render_text(result)
        assert "Stuck tasks: 2 (longest wait first)" in text
        assert "fetcher #1" in text.split("Stuck tasks")[1]


class TestDeadlocks:
    """Deadlocks come first in the report, with their tasks, locks and how long they stood."""

    def test_deadlocks_first(self) -> None:
        log = _Log()
        log.suspend(0, A, S1, 1.0)
        lock = {"type": "Lock", "id": 7, "state": "<Lock locked waiters=1>"}
        members = [
            {"task": A, "frames": _frames(*S1), "waits_for": lock, "holds": [], "waiting_s": 2.0},
            {"task": B, "frames": _frames(*S2), "waits_for": lock, "holds": [], "waiting_s": 1.5},
        ]
        log.record("deadlock", 100, tasks=members, locks=[lock, lock], stood_s=1.5)
        builder = ReportBuilder()
        for line in log.lines:
            builder.feed(orjson.loads(line))
        result = builder.result()
        (deadlock,) = result["deadlocks"]
        assert deadlock["tasks"] == ["fetcher", "poller"] and deadlock["stood_s"] == 1.5
        text = render_text(result)
        assert "DEADLOCKS: 1" in text
        assert text.index("DEADLOCKS") < text.index("tasks:")
        assert "fetcher, poller" in text
        assert "deadlock" not in result["unknown_events"]
