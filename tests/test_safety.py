"""Never harm the host: internal errors, busy tool ids, stalled sinks, clean uninstall."""

from __future__ import annotations

import _thread
import asyncio
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

import coroscope
from coroscope import _api as _install
from coroscope._config import Config
from coroscope.capture import TOOL_IDS, _chain
from coroscope.testing import MemorySink, capture_records

_mon = sys.monitoring


async def _spin(n: int) -> int:
    caught = 0
    for _ in range(n):
        try:
            await asyncio.sleep(0)
        except Exception:  # would catch anything the capture code leaked
            caught += 1
    return caught


class TestInternalErrors:
    """Exceptions raised by the capture code never reach user code."""

    def test_errors_are_contained_and_tool_switches_off(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A capture that always raises: the program runs correctly, coroscope turns itself off once."""

        def broken(self: Any, root: object, value: object) -> Any:
            raise RuntimeError("capture bug")

        monkeypatch.setattr(_chain.ChainCapture, "suspended", broken)
        with capture_records() as records:
            assert asyncio.run(_spin(50)) == 0
            assert (
                not coroscope.is_installed()
                or _install._session is None
                or not _install._session.capture.active
            )
        err = capsys.readouterr().err
        assert err.count("coroscope: switched off after 10 internal errors") == 1
        assert "RuntimeError: capture bug" in err
        # Resumes before the switch-off were still recorded; no suspend ever was.
        assert all(r["event"] in ("resume", "task.done") for r in records)
        for tool_id in TOOL_IDS:
            assert _mon.get_tool(tool_id) is None

    def test_user_exceptions_pass_through_untouched(self) -> None:
        """Exceptions of the program itself (and cancellation) behave exactly as without coroscope."""

        async def fails() -> None:
            await asyncio.sleep(0)
            raise KeyError("mine")

        async def main() -> str:
            try:
                await fails()
            except KeyError as exc:
                return str(exc)
            return "none"

        with capture_records():
            assert asyncio.run(main()) == "'mine'"


class TestToolIds:
    """coroscope takes tool id 3 or 4 and stays off when both are taken."""

    def test_both_ids_taken(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With ids 3 and 4 in use, install() returns False after one clear message."""
        for tool_id in TOOL_IDS:
            _mon.use_tool_id(tool_id, "other-tool")
        try:
            assert coroscope.install(output="stderr", environ={}) is False
            assert not coroscope.is_installed()
            err = capsys.readouterr().err
            assert "tool ids 3 and 4 are both in use" in err
            assert _mon.get_tool(3) == "other-tool"
        finally:
            for tool_id in TOOL_IDS:
                _mon.free_tool_id(tool_id)

    def test_falls_back_to_second_id(self) -> None:
        """With id 3 taken, coroscope runs on id 4."""
        _mon.use_tool_id(3, "other-tool")
        try:
            with capture_records() as records:
                assert _mon.get_tool(4) == "coroscope"
                asyncio.run(_spin(2))
            assert sum(r["event"] in ("suspend", "resume") for r in records) == 4
        finally:
            _mon.free_tool_id(3)

    def test_uninstall_leaves_nothing(self) -> None:
        """After uninstall: no tool, no events, no callbacks, no thread of coroscope's."""
        threads_before = _thread._count()
        coroscope.install(output="stderr", environ={})
        deadline = time.monotonic() + 5
        while _thread._count() < threads_before + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _thread._count() == threads_before + 2  # the writer and the watchdog
        tool_id = _install._session.capture.tool.tool_id  # type: ignore[union-attr]
        assert tool_id is not None
        coroscope.uninstall()
        coroscope.uninstall()  # twice is fine
        assert _mon.get_tool(tool_id) is None
        assert _mon.get_events(tool_id) == 0
        for event in (_mon.events.PY_YIELD, _mon.events.PY_RESUME, _mon.events.PY_THROW):
            assert _mon.register_callback(tool_id, event, None) is None
        deadline = time.monotonic() + 5
        while _thread._count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _thread._count() == threads_before

    def test_threads_are_not_the_hosts(self) -> None:
        """coroscope's threads run from install, unseen by threading's bookkeeping: the
        host's thread lists, counts and leak checks are as they were."""
        before = (threading.enumerate(), threading.active_count(), set(threading._dangling))  # type: ignore[attr-defined]
        with capture_records():
            asyncio.run(_spin(3))
            during = (threading.enumerate(), threading.active_count(), set(threading._dangling))  # type: ignore[attr-defined]
        assert during == before


class _BlockingSink(MemorySink):
    """A sink whose writes wait until released (a stalled aggregator)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        self.entered.set()
        self.release.wait()
        super().write_batch(records, levels)


class TestBoundedBuffer:
    """A full buffer drops and counts; the count is reported in the stream."""

    def test_drop_counter_under_full_buffer(self) -> None:
        """With a stalled sink and a 100-record buffer, every lost record is reported by `dropped`."""
        sink = _BlockingSink()
        config = Config(buffer_size=100, task_done=False, blocked_ms=0)
        assert _install._install(config, (), sink=sink)
        try:
            asyncio.run(_spin(5))  # starts the writer; its first write stalls
            assert sink.entered.wait(5)
            started = time.perf_counter()
            asyncio.run(_spin(1000))
            loop_time = time.perf_counter() - started
            sink.release.set()
            assert coroscope.flush(10)
        finally:
            sink.release.set()
            coroscope.uninstall()
        records = sink.records()
        switches = [r for r in records if r["event"] in ("suspend", "resume")]
        dropped = [r for r in records if r["event"] == "dropped"]
        total = 2 * 1005
        assert dropped, "a full buffer must be reported"
        assert all(d["reason"] == "buffer_full" and d["level"] == "warning" for d in dropped)
        assert len(switches) + sum(d["count"] for d in dropped) == total
        assert len(switches) <= 100 + 10 + 200  # the first batch plus one buffer's worth
        # Every record number is accounted for: written, or counted in a `dropped` record.
        seqs = {r["seq"] for r in records}
        assert max(seqs) + 1 == total + len(dropped)
        assert loop_time < 5  # the stalled sink never blocked the loop

    def test_hung_sink_bounds_shutdown(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A sink that never returns cannot hold uninstall (exit) longer than the timeout."""
        sink = _BlockingSink()
        assert _install._install(Config(), (), sink=sink)
        asyncio.run(_spin(3))
        assert sink.entered.wait(5)
        asyncio.run(_spin(3))
        started = time.monotonic()
        coroscope.uninstall(timeout=0.3)
        elapsed = time.monotonic() - started
        sink.release.set()
        assert elapsed < 2.0
        assert "records not written to memory" in capsys.readouterr().err
