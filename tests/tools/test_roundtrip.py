"""Writers and readers agree: a real program's log, read back by report and trace."""

from __future__ import annotations

import asyncio
import gc
import io
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import coroscope
from coroscope import _schema as S
from coroscope.tools._logread import LogReader
from coroscope.tools._report import ReportBuilder
from coroscope.tools._trace import TraceBuilder, TraceWriter
from helpers import read_records


async def _blocker() -> None:
    await asyncio.sleep(0)
    time.sleep(0.12)  # a slow final step


async def _stuck() -> None:
    await asyncio.get_running_loop().create_future()  # nobody completes it


async def _program() -> None:
    stuck = asyncio.create_task(_stuck(), name="stuck")
    await asyncio.sleep(0)
    time.sleep(0.12)  # a slow step of the main task
    await asyncio.create_task(_blocker(), name="blocker")
    await asyncio.sleep(0.6)  # long enough for a stuck report (0.2 s) to come
    coroscope.snapshot()
    await asyncio.sleep(0)
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    with pytest.warns(RuntimeWarning, match="never awaited"):
        never = _stuck()  # dropped without being awaited
        del never
        gc.collect()


def _log(tmp_path: Path) -> Path:
    log = tmp_path / "run.log"
    with coroscope.monitoring(
        output=str(log), environ={}, slow_step_ms=100, stuck_s=0.2, blocked_ms=100
    ):
        asyncio.run(_program())
    return log


class TestRoundTrip:
    """Every record the runtime writes is read by the tools as what it is."""

    def test_report_and_trace_read_what_was_written(self, tmp_path: Path) -> None:
        """Event names and keys come from one schema: counts agree end to end."""
        log = _log(tmp_path)
        records = read_records(log)
        by_event: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_event.setdefault(record[S.EVENT], []).append(record)
        for name in (S.SUSPEND, S.RESUME, S.END, S.TASK_STUCK, S.TASK_DONE, S.SNAPSHOT,
                     S.SNAPSHOT_SUMMARY, S.LOOP_BLOCKED, S.LOOP_UNBLOCKED, S.NEVER_AWAITED):  # fmt: skip
            assert by_event.get(name), name

        builder = ReportBuilder()
        for record in LogReader([str(log)]):
            builder.feed(record)
        result = builder.result()
        assert result["unknown_events"] == {}
        assert result["events"] == {k: len(v) for k, v in by_event.items()}
        slow = [r for r in records if r.get(S.SLOW) == S.SLOW_STEP]
        assert len(slow) >= 2  # the main task's step and the blocker's final step
        assert result["alerts"] == {"slow_step": len(slow), "stuck": len(by_event[S.TASK_STUCK])}
        assert result["blocked"]["incidents"] == len(by_event[S.LOOP_UNBLOCKED])
        stuck_names = {r[S.TASK][S.NAME] for r in by_event[S.TASK_STUCK]}
        assert "stuck" in stuck_names

        out = io.BytesIO()
        trace = TraceBuilder(TraceWriter(out))
        for record in LogReader([str(log)]):
            trace.feed(record)
        trace.finish()
        trace.writer.close({})
        events = orjson.loads(out.getvalue())["traceEvents"]
        names = [e.get("name") for e in events]
        assert names.count("stuck") == len(by_event[S.TASK_STUCK])
        assert names.count("slow step") == len(slow)
        blocker_runs = [e for e in events if e.get("name", "").endswith("-> end")]
        assert blocker_runs and blocker_runs[0]["dur"] >= 120_000
