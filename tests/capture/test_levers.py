"""The cost levers: which switches each mode logs, sampling, include/exclude."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import coroscope
from coroscope.testing import capture_records
from helpers import joined


def _switches(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in joined(records) if r["event"] in ("suspend", "resume")]


async def _quick(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _resolved_after(delay: float) -> None:
    """A wait that is not a timer's (a future another callback completes): slow mode judges
    it by its length alone."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    handle = loop.call_later(delay, fut.set_result, None)
    try:
        await fut
    finally:
        handle.cancel()


async def _mixed() -> None:
    """Three quick switches, one slow wait (60 ms), one slow step (60 ms of blocking)."""
    label = "mixed"
    await asyncio.sleep(0)  # quick
    await _resolved_after(0.06)  # slow-wait
    time.sleep(0.06)  # slow-step runs before the next await
    await asyncio.sleep(0)  # after-slow-step
    await asyncio.sleep(0)
    del label


class TestModes:
    """`all` logs every switch; `slow` only those that cross a threshold."""

    def test_all_mode_logs_everything(self) -> None:
        """Every switch gives a suspend and a resume."""
        with capture_records() as records:
            asyncio.run(_mixed())
        assert [r["event"] for r in _switches(records)] == ["suspend", "resume"] * 4

    def test_slow_mode_logs_only_slow_switches(self) -> None:
        """In slow mode a quick run logs nothing; a slow wait logs its resume, a slow step its suspend."""
        with capture_records(mode="slow", slow_step_ms=40, slow_await_ms=40) as records:
            asyncio.run(_mixed())
        switches = _switches(records)
        assert [(r["event"], r["level"]) for r in switches] == [
            ("resume", "info"),
            ("suspend", "warning"),
        ]
        slow_wait, slow_step = switches
        assert slow_wait["waited_ms"] >= 40
        root = slow_wait["frames"][0]
        assert root["function"] == "_mixed"
        assert root["locals"] == {"label": "mixed"}
        assert "slow-wait" in Path(root["file"]).read_text().splitlines()[root["line"] - 1]
        assert slow_wait["awaiting"]["type"] == "Future"
        assert slow_step["step_ms"] >= 40
        assert slow_step["slow"] == "step"
        step_line = Path(root["file"]).read_text().splitlines()[slow_step["frames"][0]["line"] - 1]
        assert "after-slow-step" in step_line
        resumed_line = (
            Path(root["file"]).read_text().splitlines()[slow_step["resumed_at"]["line"] - 1]
        )
        assert "slow-wait" in resumed_line

    def test_slow_step_warning_in_all_mode(self) -> None:
        """A slow step is a warning with `resumed_at` in all mode too; quick steps stay info."""
        with capture_records(slow_step_ms=40) as records:
            asyncio.run(_mixed())
        warnings = [r for r in records if r["level"] == "warning"]
        assert len(warnings) == 1
        assert warnings[0]["event"] == "suspend" and warnings[0]["slow"] == "step"
        assert warnings[0]["resumed_at"]["function"] == "_mixed"
        assert all(r["level"] == "info" for r in records if r is not warnings[0])

    def test_slow_mode_reports_cancellation_after_a_slow_wait(self) -> None:
        """In slow mode a cancellation is logged when its wait crossed the threshold, else not."""

        async def main() -> None:
            quick = asyncio.create_task(asyncio.Event().wait(), name="quick")
            slow = asyncio.create_task(asyncio.Event().wait(), name="slow")
            await asyncio.sleep(0)
            quick.cancel()
            await asyncio.sleep(0.3)
            slow.cancel()
            await asyncio.gather(quick, slow, return_exceptions=True)

        with capture_records(mode="slow", slow_await_ms=200, exclude=()) as records:
            asyncio.run(main())
        cancelled = [r for r in records if r.get("exception") == "CancelledError"]
        assert [r["task"]["name"] for r in cancelled] == ["slow"]


class TestSampling:
    """COROSCOPE_SAMPLE picks whole tasks."""

    def test_sampled_tasks_are_complete(self) -> None:
        """With 30% sampling some tasks are captured, others not, and a captured task has every switch."""

        async def worker() -> None:
            for _ in range(5):
                await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(*(worker() for _ in range(200)))

        with capture_records(sample=0.3) as records:
            asyncio.run(main())
        per_task: dict[int, int] = {}
        for r in _switches(records):
            if r["frames"][0]["function"].endswith("worker"):
                per_task[r["task"]["id"]] = per_task.get(r["task"]["id"], 0) + 1
        assert 20 <= len(per_task) <= 120  # about 60 of 200
        assert set(per_task.values()) == {10}  # 5 suspends + 5 resumes each

    def test_sample_zero_captures_nothing(self) -> None:
        """Sampling 0 captures no task."""
        with capture_records(sample=0) as records:
            asyncio.run(_quick(3))
        assert _switches(records) == []


class TestIncludeExclude:
    """Module globs select tasks and frames."""

    def test_asyncio_frames_left_out_by_default(self) -> None:
        """By default asyncio's own frames are not in chains; the user frame says what it awaits."""
        with capture_records() as records:
            asyncio.run(_quick(1))
        frames = records[0]["frames"]
        assert [f["function"] for f in frames] == ["_quick"]
        assert frames[0]["awaits"] == {"type": "coroutine", "name": "sleep"}

    def test_excluding_a_module_drops_its_tasks(self) -> None:
        """Tasks whose root coroutine is in an excluded module are not captured."""
        with capture_records(exclude=["test_levers"]) as records:
            asyncio.run(_quick(3))
        assert _switches(records) == []

    def test_include_limits_to_matching_modules(self) -> None:
        """With include set, other modules' tasks are left out and included ones kept."""
        with capture_records(include=["nothing_matches.*"]) as records:
            asyncio.run(_quick(2))
        assert _switches(records) == []
        with capture_records(include=["test_lev*"]) as records:
            asyncio.run(_quick(2))
        assert len(_switches(records)) == 4

    def test_excluded_middle_frames(self) -> None:
        """Frames of excluded modules vanish from the middle of a chain; the rest stay in order."""

        async def inner() -> None:
            await asyncio.sleep(0)

        async def outer() -> None:
            await asyncio.wait_for(inner(), 5)

        with capture_records() as records:
            asyncio.run(outer())
        functions = [f["function"] for r in records if r["event"] == "suspend" for f in r["frames"]]
        assert all("wait_for" not in f for f in functions)
        assert any(f.endswith("outer") for f in functions)


class TestAdoption:
    """Installing from inside a running loop captures tasks that already run."""

    def test_tasks_started_before_install(self) -> None:
        """A task suspended before install() is logged from its next switch on."""

        async def long_runner(ready: asyncio.Event, go: asyncio.Event) -> None:
            ready.set()
            await go.wait()
            await asyncio.sleep(0)

        async def main() -> None:
            ready, go = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(long_runner(ready, go), name="early")
            await ready.wait()
            coroscope.install(output="stderr", environ={})
            try:
                go.set()
                await task
            finally:
                coroscope.flush(5)

        from coroscope.testing import MemorySink

        sink = MemorySink()
        from coroscope import _session

        original = _session.open_sink
        _session.open_sink = lambda output, **settings: sink  # type: ignore[assignment]
        try:
            asyncio.run(main())
        finally:
            _session.open_sink = original
            coroscope.uninstall()
        early = [
            r for r in sink.records() if r["event"] != "dropped" and r["task"]["name"] == "early"
        ]
        assert [r["event"] for r in early][:2] == ["resume", "suspend"]
        assert early[0]["frames"][0]["function"].endswith("long_runner")


async def _leaf_wait(delay: float) -> None:
    marker = "leaf"
    await _resolved_after(delay)  # leaf-await
    del marker


async def _slow_step_then_slow_wait() -> None:
    time.sleep(0.06)  # a slow step ...
    await _leaf_wait(0.06)  # ... ending in a slow wait


class TestSlowModeChains:
    """A resume logged in slow mode carries the whole chain it was suspended in."""

    def test_slow_step_then_slow_wait(self) -> None:
        """After a logged slow step, the slow wait's resume has the inner frame and the future."""
        settings = {"mode": "slow", "slow_step_ms": 50, "slow_await_ms": 50}
        with capture_records(**settings) as records:
            asyncio.run(_slow_step_then_slow_wait())
        suspend = next(r for r in records if r["event"] == "suspend")
        assert suspend["slow"] == "step"
        resume = next(r for r in joined(records) if r["event"] == "resume")
        assert resume["suspend_seq"] == suspend["seq"]  # the slow step's chain, whole
        names = [f["function"] for f in resume["frames"]]
        assert names == ["_slow_step_then_slow_wait", "_leaf_wait", "_resolved_after"]
        assert resume["frames"][1]["locals"]["marker"] == "leaf"
        assert resume["awaiting"]["type"] == "Future"
        assert resume["waited_ms"] >= 50

    def test_cancelled_wait_keeps_the_users_frame(self) -> None:
        """Cancelling a waiting task in slow mode logs the chain down to the user's await."""

        async def handler() -> None:
            await _leaf_wait(10)

        async def main() -> None:
            victim = asyncio.create_task(handler(), name="victim")
            await asyncio.sleep(0.3)  # a wait past the threshold: logged when cancelled
            victim.cancel()
            await asyncio.gather(victim, return_exceptions=True)

        with capture_records(mode="slow", slow_await_ms=200, task_done=True) as records:
            asyncio.run(main())
        resume = next(r for r in records if r.get("exception") == "CancelledError")
        chain = [f["function"].rsplit(".", 1)[-1] for f in resume["frames"]]
        assert chain == ["handler", "_leaf_wait", "_resolved_after"]
        assert resume["frames"][1]["locals"] == {"delay": 10, "marker": "leaf"}
        assert resume["frames"][1]["awaits"] == {"type": "coroutine", "name": "_resolved_after"}
        assert resume["frames"][0]["awaits"] == {"type": "coroutine", "name": "_leaf_wait"}
        done = next(r for r in records if r["event"] == "task.done" and r["outcome"] == "cancelled")
        assert [f["function"].rsplit(".", 1)[-1] for f in done["cancelled_at"]] == chain
