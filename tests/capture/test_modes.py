"""``watch`` mode (nothing per switch) and the rules of a quiet ``slow`` mode."""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from typing import Any

import pytest

from coroscope.testing import capture_records

SWITCH_EVENTS = ("suspend", "resume", "end")


def _events(records: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] in names]


def _done_of(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in _events(records, "task.done") if r["task"]["name"] == name]


class TestWatchMode:
    """No per-switch record and no per-switch event; failures, stuck tasks and snapshots stay."""

    def test_no_switch_records_and_only_failures_end(self) -> None:
        """Tasks that return or are cancelled write nothing; one that raises writes its task.done."""

        async def fine() -> int:
            for _ in range(5):
                await asyncio.sleep(0)
            return 1

        def explode(order: int) -> None:
            raise KeyError(order)  # raise-here

        async def failing() -> None:
            await asyncio.sleep(0)
            explode(7)

        async def forever() -> None:
            await asyncio.sleep(3600)

        async def main() -> None:
            ok = asyncio.create_task(fine(), name="fine")
            bad = asyncio.create_task(failing(), name="failing")
            idle = asyncio.create_task(forever(), name="forever")
            await asyncio.gather(ok, bad, return_exceptions=True)
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)

        with capture_records(mode="watch", blocked_ms=0, stuck_s=0) as records:
            asyncio.run(main())
        assert _events(records, *SWITCH_EVENTS) == []
        assert _done_of(records, "fine") == [] and _done_of(records, "forever") == []
        (done,) = _done_of(records, "failing")
        assert done["level"] == "warning"
        assert done["outcome"] == "exception" and done["exception"] == "KeyError"
        assert done["raised_at"]["function"].endswith("explode")
        assert done["raised_at"]["file"] == __file__
        assert "age_ms" not in done  # not known without following the task

    def test_no_event_fires_at_a_switch(self) -> None:
        """The callbacks are not called at task switches (counted, not timed): a run with
        twenty times the switches calls them as often."""
        calls: list[str] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                await asyncio.sleep(0)

        async def main(n: int) -> None:
            await asyncio.gather(*(worker(n) for _ in range(4)))

        counts = []
        with capture_records(mode="watch", blocked_ms=0, stuck_s=0):
            from coroscope import _api

            capture = _api._session.capture  # type: ignore[union-attr]
            for name in ("on_start", "on_return", "on_unwind"):
                original = getattr(capture, name)

                def counting(*args: Any, _f: Any = original, _n: str = name) -> object:
                    calls.append(_n)
                    return _f(*args)

                setattr(capture, name, counting)
            capture.tool.stop()
            assert capture.start()  # registers the counting callbacks
            for n in (10, 200):  # 40 and 800 switches
                del calls[:]
                asyncio.run(main(n))
                counts.append(len(calls))
        # A loop's start and end, and asyncio's own exceptions at shut-down: never per switch.
        assert counts[0] == counts[1] and counts[0] < 40, counts

    def test_stuck_task_found_by_scans(self) -> None:
        """A task awaiting a future nobody completes is reported stuck, with its locals."""

        async def stuck(fut: asyncio.Future[None]) -> None:
            order_id = 4711
            await fut
            del order_id

        async def main() -> None:
            fut = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(stuck(fut), name="stuck")
            await asyncio.sleep(0.8)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        with capture_records(mode="watch", stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        reports = [r for r in _events(records, "task.stuck") if r["task"]["name"] == "stuck"]
        assert reports, [r["event"] for r in records]
        first = reports[0]
        assert 0.2 <= first["suspended_s"] < 0.8
        assert first["frames"][0]["locals"]["order_id"] == 4711
        # Reported again only when the wait has doubled, not at every scan.
        assert len(reports) <= 2, [r["suspended_s"] for r in reports]

    def test_snapshot_and_never_awaited(self) -> None:
        """snapshot() names every task; a never-awaited coroutine is still recorded."""

        async def waiter(event: asyncio.Event) -> None:
            await event.wait()

        async def orphan() -> None:
            pass

        async def main() -> None:
            event = asyncio.Event()
            task = asyncio.create_task(waiter(event), name="waiter")
            await asyncio.sleep(0.01)
            import coroscope

            coroscope.snapshot()
            await asyncio.sleep(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                orphan()
            event.set()
            await task

        with capture_records(mode="watch", blocked_ms=0, stuck_s=0) as records:
            asyncio.run(main())
        snaps = [r for r in _events(records, "snapshot") if r["task"]["name"] == "waiter"]
        assert len(snaps) == 1
        assert snaps[0]["idle"] == "event"
        assert snaps[0]["frames"][0]["function"].endswith("waiter")
        never = _events(records, "coroutine.never_awaited")
        assert [r["coroutine"] for r in never] == [
            "TestWatchMode.test_snapshot_and_never_awaited.<locals>.orphan"
        ]

    def test_blocked_loop_seen(self) -> None:
        """The watchdog finds the loop without any task switch being followed."""

        async def main() -> None:
            await asyncio.sleep(0.05)
            time.sleep(0.4)

        with capture_records(mode="watch", blocked_ms=100, stuck_s=0) as records:
            asyncio.run(main())
        assert len(_events(records, "loop.blocked")) == 1


class TestQuietSlowMode:
    """``slow`` mode writes only what crossed a threshold, by the rules of the README."""

    def test_timer_wait_is_slow_only_when_it_overran(self) -> None:
        """sleep(0.3) with a 0.2 s threshold is not slow; a future that takes 0.3 s is."""

        async def sleeper() -> None:
            await asyncio.sleep(0.3)

        async def waiter() -> None:
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.3, fut.set_result, None)
            await fut

        async def main() -> None:
            await asyncio.gather(
                asyncio.create_task(sleeper(), name="sleeper"),
                asyncio.create_task(waiter(), name="waiter"),
            )

        with capture_records(mode="slow", slow_await_ms=200, blocked_ms=0) as records:
            asyncio.run(main())
        names = [r["task"]["name"] for r in _events(records, "resume")]
        assert [n for n in names if n in ("sleeper", "waiter")] == ["waiter"], names

    def test_timer_wait_that_overran_is_slow(self) -> None:
        """A sleep(0.05) held up 0.3 s by a blocked loop crosses a 0.2 s threshold."""

        async def sleeper() -> None:
            await asyncio.sleep(0.05)

        async def blocker() -> None:
            await asyncio.sleep(0)
            time.sleep(0.3)

        async def main() -> None:
            await asyncio.gather(
                asyncio.create_task(sleeper(), name="sleeper"),
                asyncio.create_task(blocker(), name="blocker"),
            )

        with capture_records(
            mode="slow", slow_await_ms=200, slow_step_ms=0, blocked_ms=0
        ) as records:
            asyncio.run(main())
        names = [r["task"]["name"] for r in _events(records, "resume")]
        assert [n for n in names if n in ("sleeper", "blocker")] == ["sleeper"], names

    def test_quick_cancellation_is_not_logged(self) -> None:
        """Cancelling a task that waited briefly writes neither a resume nor a task.done."""

        async def worker() -> None:
            await asyncio.get_running_loop().create_future()

        async def main() -> None:
            task = asyncio.create_task(worker(), name="worker")
            await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        with capture_records(mode="slow", slow_await_ms=200, blocked_ms=0) as records:
            asyncio.run(main())
        assert _events(records, "resume", "task.done") == []

    def test_cancellation_after_a_slow_wait_is_logged(self) -> None:
        """A task cancelled after waiting past the threshold: its resume and its task.done."""

        async def worker() -> None:
            await asyncio.get_running_loop().create_future()

        async def main() -> None:
            task = asyncio.create_task(worker(), name="worker")
            await asyncio.sleep(0.3)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        with capture_records(mode="slow", slow_await_ms=200, blocked_ms=0) as records:
            asyncio.run(main())
        (resume,) = _events(records, "resume")
        assert resume["exception"] == "CancelledError" and resume["waited_ms"] >= 200
        (done,) = _done_of(records, "worker")
        assert done["outcome"] == "cancelled"
        assert done["cancelled_at"][0]["function"].endswith("worker")

    @pytest.mark.parametrize("mode", ["slow", "all"])
    def test_task_done_in_slow_mode(self, mode: str) -> None:
        """slow: task.done only for a failure or a slow step; all: for every task."""

        async def fine() -> None:
            await asyncio.sleep(0)

        async def failing() -> None:
            await asyncio.sleep(0)
            raise ValueError("no")

        async def slow_step() -> None:
            await asyncio.sleep(0)
            time.sleep(0.15)
            await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(
                asyncio.create_task(fine(), name="fine"),
                asyncio.create_task(failing(), name="failing"),
                asyncio.create_task(slow_step(), name="slow_step"),
                return_exceptions=True,
            )

        with capture_records(mode=mode, slow_step_ms=100, blocked_ms=0) as records:
            asyncio.run(main())
        names = sorted(r["task"]["name"] for r in _events(records, "task.done"))
        expected = ["failing", "slow_step"] if mode == "slow" else ["failing", "fine", "slow_step"]
        assert [n for n in names if n in ("fine", "failing", "slow_step")] == expected


@pytest.mark.parametrize("mode", ["watch", "slow"])
def test_a_healthy_service_writes_nothing(mode: str) -> None:
    """A server with clients that connect, talk, time out a wait and disconnect: nothing is
    slow, stuck or failing, so nothing is written (cancellations and timers included)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(20):
            writer.write(b"ping\n")
            await reader.readline()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.readline(), 0.05)  # times out: ordinary flow
        writer.close()
        await writer.wait_closed()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.3)  # longer than the threshold, as asked: not slow

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tick = asyncio.create_task(ticker())
        async with server:
            await asyncio.gather(*(client(port) for _ in range(3)))
        await asyncio.sleep(0.35)
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)

    with capture_records(mode=mode, slow_await_ms=200, stuck_s=0.2) as records:
        asyncio.run(main())
    assert records == []
