"""Answers to debugging questions in the running program: blocked loops, stuck tasks,
snapshots, task endings and never-awaited coroutines."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import coroscope
from coroscope.testing import capture_records


def _events(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == name]


def blocking_helper(seconds: float) -> None:
    time.sleep(seconds)  # blocks-the-loop


class TestBlockedLoop:
    """The watchdog sees a blocked loop while it is blocked."""

    def test_blocking_sleep_caught_with_stack(self) -> None:
        """A 0.4 s time.sleep in a task is reported during the block, with the task and the sleeping line."""

        async def culprit() -> None:
            await asyncio.sleep(0)
            blocking_helper(0.4)

        async def main() -> None:
            task = asyncio.create_task(culprit(), name="culprit")
            await asyncio.sleep(0.05)  # let the watchdog start sending heartbeats
            await task

        with capture_records(blocked_ms=100) as records:
            asyncio.run(main())
        blocked = _events(records, "loop.blocked")
        unblocked = _events(records, "loop.unblocked")
        assert len(blocked) == 1, records
        assert len(unblocked) == 1
        report = blocked[0]
        assert report["level"] == "warning"
        assert report["task"]["name"] == "culprit"
        assert 100 <= report["blocked_ms"] < 2000
        innermost = report["stack"][-1]
        assert innermost["function"] == "blocking_helper"
        assert innermost["file"] == __file__
        assert report["thread"] == "MainThread"
        assert 300 <= unblocked[0]["blocked_ms"] < 2000
        assert blocked[0]["seq"] < unblocked[0]["seq"]
        # The report was made while the loop was blocked, not after: it was timestamped
        # before the record that ended the block.
        assert blocked[0]["timestamp"] < unblocked[0]["timestamp"]

    def test_idle_loop_is_not_blocked(self) -> None:
        """A loop waiting on a timer (idle) is not reported."""

        async def main() -> None:
            await asyncio.sleep(0.3)

        with capture_records(blocked_ms=50) as records:
            asyncio.run(main())
        assert _events(records, "loop.blocked") == []

    def test_watchdog_off(self) -> None:
        """COROSCOPE_BLOCKED_MS=0 (with stuck reports off) starts no watchdog thread."""

        async def main() -> None:
            await asyncio.sleep(0)
            names = {t.name for t in threading.enumerate()}
            assert "coroscope-watchdog" not in names

        with capture_records(blocked_ms=0, stuck_s=0):
            asyncio.run(main())


class TestStuckTasks:
    """Tasks suspended too long are reported with their chain, locals and awaited object."""

    def test_task_stuck_on_a_future(self) -> None:
        """A task awaiting a future nobody completes is reported with its locals, once it
        reaches the threshold and again when its wait has doubled, not at every scan."""

        async def waiter(fut: asyncio.Future[None]) -> None:
            order_id = 4711
            await fut
            del order_id

        async def main() -> None:
            fut = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(waiter(fut), name="waiter")
            await asyncio.sleep(0.7)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        with capture_records(stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        stuck = [r for r in _events(records, "task.stuck") if r["task"]["name"] == "waiter"]
        assert stuck, [r["event"] for r in records]
        first = stuck[0]
        assert first["level"] == "warning"
        # Scans run four times per threshold: the first report is at most a scan late
        # (with room for a loaded machine), not a whole threshold.
        assert 0.2 <= first["suspended_s"] < 0.39
        assert first["frames"][0]["function"].endswith("waiter")
        assert first["frames"][0]["locals"]["order_id"] == 4711
        assert first["awaiting"]["type"] == "Future"
        waits = [r["suspended_s"] for r in stuck]
        # (Each report's wait is rounded to the millisecond: a doubling can read 1.5 ms short.)
        doubled = all(b >= 2 * a - 0.002 for a, b in itertools.pairwise(waits))
        assert len(stuck) <= 2 and doubled, waits

    @pytest.mark.parametrize("mode", ["all", "watch"])
    def test_timer_and_idle_waits_are_never_stuck(self, mode: str) -> None:
        """Sleeps, queue gets, event and condition waits, wait_for's timeout and waits for
        other tasks are not stuck; an ordinary wait next to them is."""

        async def sleeper() -> None:
            await asyncio.sleep(3600)

        async def consumer(queue: asyncio.Queue[int]) -> None:
            await queue.get()

        async def listener(event: asyncio.Event) -> None:
            await event.wait()

        async def conditioned(cond: asyncio.Condition) -> None:
            async with cond:
                await cond.wait()

        async def timed(fut: asyncio.Future[None]) -> None:
            await asyncio.wait_for(fut, 3600)

        async def parent(child: asyncio.Task[None]) -> None:
            await child

        async def stuck(fut: asyncio.Future[None]) -> None:
            await fut

        async def main() -> None:
            loop = asyncio.get_running_loop()
            never, never2 = loop.create_future(), loop.create_future()
            queue: asyncio.Queue[int] = asyncio.Queue()
            child = asyncio.create_task(stuck(never), name="stuck")
            tasks = [
                asyncio.create_task(sleeper(), name="sleeper"),
                asyncio.create_task(consumer(queue), name="consumer"),
                asyncio.create_task(listener(asyncio.Event()), name="listener"),
                asyncio.create_task(conditioned(asyncio.Condition()), name="conditioned"),
                asyncio.create_task(timed(never2), name="timed"),
                asyncio.create_task(parent(child), name="parent"),
                child,
            ]
            await asyncio.sleep(0.6)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with capture_records(mode=mode, stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        names = {r["task"]["name"] for r in _events(records, "task.stuck")}
        assert names == {"stuck"}, names

    def test_stuck_ignore_silences_an_await_site(self) -> None:
        """COROSCOPE_STUCK_IGNORE globs match a chain frame's module.function or file:line."""

        async def poller(fut: asyncio.Future[None]) -> None:
            await fut

        async def other(fut: asyncio.Future[None]) -> None:
            await fut

        async def main() -> None:
            loop = asyncio.get_running_loop()
            tasks = [
                asyncio.create_task(poller(loop.create_future()), name="poller"),
                asyncio.create_task(other(loop.create_future()), name="other"),
            ]
            await asyncio.sleep(0.5)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        environ = {"COROSCOPE_STUCK_IGNORE": "*.poller"}
        with capture_records(environ=environ, stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        assert {r["task"]["name"] for r in _events(records, "task.stuck")} == {"other"}
        line = other.__code__.co_firstlineno + 1
        environ = {"COROSCOPE_STUCK_IGNORE": f"*/{Path(__file__).name}:{line}"}
        with capture_records(environ=environ, stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        assert {r["task"]["name"] for r in _events(records, "task.stuck")} == {"poller"}


class TestSnapshot:
    """coroscope.snapshot() and the signal dump every live task."""

    @staticmethod
    async def _scene() -> tuple[int | None, dict[str, asyncio.Task[Any]]]:
        event = asyncio.Event()

        async def blocked_on_event() -> None:
            account = "acme"
            await event.wait()
            del account

        async def child(n: int) -> None:
            await event.wait()

        async def gatherer() -> None:
            await asyncio.gather(child(1), child(2))

        async def grouped() -> None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(child(3), name="tg-child")

        tasks = {
            "event": asyncio.create_task(blocked_on_event(), name="on-event"),
            "gather": asyncio.create_task(gatherer(), name="gatherer"),
            "group": asyncio.create_task(grouped(), name="grouped"),
        }
        await asyncio.sleep(0.01)
        snapshot_id = coroscope.snapshot()
        event.set()
        await asyncio.gather(*tasks.values())
        return snapshot_id, tasks

    def test_snapshot_lists_every_task_and_who_awaits_whom(self) -> None:
        """Each live task has a record with state, chain, locals and awaited tasks; a summary counts them."""
        with capture_records(blocked_ms=0) as records:
            snapshot_id, _ = asyncio.run(self._scene())
        snaps = [r for r in _events(records, "snapshot") if r["snapshot_id"] == snapshot_id]
        by_name = {r["task"]["name"]: r for r in snaps}
        assert by_name["on-event"]["state"] == "pending"
        assert by_name["on-event"]["frames"][0]["locals"]["account"] == "acme"
        main = next(r for r in snaps if r["state"] == "running")
        assert main["frames"] == []
        # gather: the gatherer awaits its two children (tasks named Task-N)
        gather_children = by_name["gatherer"]["awaits_tasks"]
        assert len(gather_children) == 2
        child_ids = {
            r["task"]["id"]
            for r in snaps
            if r["frames"] and r["frames"][0]["function"].endswith("child")
        }
        assert set(gather_children) <= child_ids
        # TaskGroup: the parent awaits its child
        assert by_name["grouped"]["awaits_tasks"] == [by_name["tg-child"]["task"]["id"]]
        summary = [
            r for r in _events(records, "snapshot.summary") if r["snapshot_id"] == snapshot_id
        ]
        assert len(summary) == 1
        assert (
            summary[0]["tasks"] == len(snaps) == 7
        )  # main, 3 scene tasks, 2 gather children, tg child
        assert summary[0]["by_state"] == {"running": 1, "pending": 6}

    @pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
    def test_sigusr1_dumps_a_snapshot(self) -> None:
        """SIGUSR1 (unhandled before) makes every loop dump its tasks."""
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL

        async def sleeper() -> None:
            await asyncio.sleep(0.2)

        async def main() -> None:
            task = asyncio.create_task(sleeper(), name="sleeper")
            await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGUSR1)
            await task

        with capture_records(blocked_ms=0) as records:
            asyncio.run(main())
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # given back at uninstall
        names = {r["task"]["name"] for r in _events(records, "snapshot")}
        assert "sleeper" in names
        assert len(_events(records, "snapshot.summary")) == 1

    def test_existing_handler_is_left_alone(self, capsys: pytest.CaptureFixture[str]) -> None:
        """If the application handles SIGUSR1, coroscope keeps off it and says so once."""
        calls: list[int] = []
        previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
        try:
            with capture_records(blocked_ms=0):
                os.kill(os.getpid(), signal.SIGUSR1)
            assert calls == [signal.SIGUSR1]
            assert "SIGUSR1 already has a handler" in capsys.readouterr().err
        finally:
            signal.signal(signal.SIGUSR1, previous)


class TestTaskDone:
    """task.done records say how each task ended."""

    def test_outcomes(self) -> None:
        """Result, exception and cancellation (with where it was suspended) are reported with counts and times."""

        async def ok() -> int:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return 1

        async def fails() -> None:
            await asyncio.sleep(0)
            raise KeyError("x")

        async def cancelled() -> None:
            await asyncio.sleep(10)  # cancelled-here

        async def main() -> None:
            tasks = [
                asyncio.create_task(ok(), name="ok"),
                asyncio.create_task(fails(), name="fails"),
                asyncio.create_task(cancelled(), name="cancelled"),
            ]
            await asyncio.sleep(0.01)
            tasks[2].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with capture_records(blocked_ms=0) as records:
            asyncio.run(main())
        done = {r["task"]["name"]: r for r in _events(records, "task.done")}
        assert done["ok"]["outcome"] == "result"
        assert done["ok"]["result_type"] == "int"
        assert done["ok"]["switches"] == 2
        assert done["ok"]["run_ms"] >= 0 and done["ok"]["wait_ms"] >= 0
        assert done["ok"]["age_ms"] >= done["ok"]["run_ms"]
        assert done["fails"]["outcome"] == "exception"
        assert done["fails"]["exception"] == "KeyError"
        assert done["fails"]["level"] == "warning"
        assert done["cancelled"]["outcome"] == "cancelled"
        where = done["cancelled"]["cancelled_at"][0]
        assert where["function"].endswith("cancelled")
        assert "cancelled-here" in Path(where["file"]).read_text().splitlines()[where["line"] - 1]

    def test_unretrieved_exception_still_logged_by_asyncio(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Reading a failed task's outcome does not mark its exception as retrieved."""

        async def fails() -> None:
            raise ValueError("lost")

        async def main() -> None:
            asyncio.create_task(fails())  # noqa: RUF006 - never awaited on purpose
            await asyncio.sleep(0.01)

        with capture_records(blocked_ms=0) as records:
            asyncio.run(main())
            gc.collect()
        assert any(r.get("exception") == "ValueError" for r in _events(records, "task.done"))
        assert "Task exception was never retrieved" in caplog.text


class _HostileFuture:
    """A future-like whose attribute lookups and class check are spied on."""

    _asyncio_future_blocking = True

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._callbacks: list[Any] = []
        self._cancelled = False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add_done_callback(self, callback: Any, *, context: Any = None) -> None:
        self._callbacks.append(callback)

    def remove_done_callback(self, callback: Any) -> int:
        return 0

    def cancel(self, msg: Any = None) -> bool:
        self._cancelled = True
        for callback in self._callbacks:
            self._loop.call_soon(callback, self)
        return True

    def done(self) -> bool:
        return self._cancelled

    def result(self) -> None:
        raise asyncio.CancelledError

    def __await__(self) -> Any:
        yield self

    def __getattr__(self, name: str) -> Any:
        SPIED.append(f"getattr {name}")
        raise AttributeError(name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        SPIED.append("__class__")
        return _HostileFuture


SPIED: list[str] = []


class TestSnapshotRules:
    """Snapshots read awaited objects and frames by the capture path's rules."""

    def test_no_user_code_of_an_awaited_object(self) -> None:
        """A task waiting on a future-like with __getattr__ and a __class__ property: none runs."""

        async def waiter(fut: _HostileFuture) -> None:
            await fut

        async def main() -> None:
            task = asyncio.create_task(waiter(_HostileFuture(asyncio.get_running_loop())))
            await asyncio.sleep(0)
            SPIED.clear()
            coroscope.snapshot()
            spied = list(SPIED)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert spied == []

        with capture_records(blocked_ms=0) as records:
            asyncio.run(main())
        snaps = [r for r in _events(records, "snapshot") if r.get("awaiting")]
        snap = next(r for r in snaps if r["awaiting"]["type"] == "_HostileFuture")
        assert snap["awaiting"]["repr"].startswith("<test_diagnostics._HostileFuture object at 0x")

    @pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13 keeps no f_locals cache")
    def test_frame_locals_cache_emptied(self) -> None:
        """On 3.12, a TaskGroup frame read for a snapshot does not keep its locals cached."""
        seen: list[Any] = []

        async def child() -> None:
            await asyncio.sleep(0.05)

        async def grouped() -> None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(child())

        async def main() -> None:
            task = asyncio.create_task(grouped())
            await asyncio.sleep(0.01)
            coroscope.snapshot()
            aexit = task.get_coro().cr_await
            while aexit is not None and aexit.cr_code is not asyncio.TaskGroup.__aexit__.__code__:
                aexit = aexit.cr_await
            assert aexit is not None
            seen.extend(r for r in gc.get_referents(aexit) if type(r) is dict)
            await task

        with capture_records(blocked_ms=0, locals="off"):
            asyncio.run(main())
        assert all(d == {} for d in seen), seen


class TestNeverAwaited:
    """A coroutine that is never awaited becomes a record; Python's warning still appears."""

    def test_record_and_warning(self) -> None:
        """The record names the coroutine; the RuntimeWarning is still raised for the program."""

        async def forgotten() -> None:
            pass

        with capture_records() as records, pytest.warns(RuntimeWarning, match="never awaited"):
            forgotten()
            gc.collect()
        records_of = _events(records, "coroutine.never_awaited")
        assert len(records_of) == 1
        assert records_of[0]["coroutine"].endswith("forgotten")
        assert records_of[0]["file"] == __file__
        assert records_of[0]["level"] == "warning"
