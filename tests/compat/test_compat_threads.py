"""Loops in several threads, and coroutines that no asyncio task drives.

Decided behaviour: only asyncio tasks are logged.  A coroutine driven by hand
(``coro.send``/``throw``/``close``) or by another runner has no task: nothing is logged for
it, it never appears in a task's chain, and driving one from inside a task changes nothing
in that task's records.
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

import coroscope
from coroscope import _api as _install
from coroscope._config import Config
from coroscope.testing import MemorySink, capture_records
from helpers import joined

uvloop = pytest.importorskip("uvloop")

QUIET = {"task_done": False, "blocked_ms": 0}


def _switches(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in joined(records) if r["event"] in ("suspend", "resume")]


def _functions(record: dict[str, Any]) -> list[str]:
    return [f["function"].rsplit(".", 1)[-1] for f in record["frames"]]


# -- one loop per thread ------------------------------------------------------------------

ITERATIONS = 10
JOBS = 4


async def _job(k: int) -> int:
    owner = threading.current_thread().name
    owner_ident = threading.get_ident()
    done = 0
    for i in range(ITERATIONS):
        await asyncio.sleep(0)
        await asyncio.sleep(0.0005 * (i % 3))
        done += 1
    del owner, owner_ident
    return done


async def _workload(start: threading.Barrier, end: threading.Barrier | None) -> int:
    owner = threading.current_thread().name
    await asyncio.to_thread(start.wait, 10)  # every loop is running before any job starts
    async with asyncio.TaskGroup() as tg:
        jobs = [tg.create_task(_job(k), name=f"{owner}/job{k}") for k in range(JOBS)]
    if end is not None:
        await asyncio.to_thread(end.wait, 10)
    return sum(job.result() for job in jobs)


def _run_loop(factory: Callable[[], asyncio.AbstractEventLoop] | None, coro: Any) -> None:
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(coro) == JOBS * ITERATIONS


def _start_threads(
    factories: list[Callable[[], asyncio.AbstractEventLoop] | None],
    end: threading.Barrier | None = None,
) -> list[threading.Thread]:
    start = threading.Barrier(len(factories))
    threads = [
        threading.Thread(target=_run_loop, args=(factory, _workload(start, end)), name=f"loop-{n}")
        for n, factory in enumerate(factories)
    ]
    for thread in threads:
        thread.start()
    return threads


class _GateSink(MemorySink):
    """A sink whose first write waits for the gate: later records are rendered after it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        self.entered.set()
        self.gate.wait(10)
        super().write_batch(records, levels)


class TestThreadsEachWithALoop:
    """Four threads run their own loops at the same time."""

    @pytest.mark.parametrize("kind", ["asyncio", "asyncio+uvloop"])
    def test_switches_attributed_to_their_thread(self, kind: str) -> None:
        """Every switch carries the id and name of the thread that ran it; no task crosses threads."""
        factories = [None, None, None, None]
        if kind == "asyncio+uvloop":
            factories[1] = factories[3] = uvloop.new_event_loop
        end = threading.Barrier(len(factories) + 1)  # threads stay alive until all is written
        with capture_records(**QUIET) as records:
            threads = _start_threads(factories, end)
            try:
                end.wait(20)
                coroscope.flush(10)
            finally:
                for thread in threads:
                    thread.join(20)
        jobs = [r for r in _switches(records) if r["frames"][0]["function"] == "_job"]
        assert len(jobs) == len(factories) * JOBS * ITERATIONS * 4
        by_thread: dict[str, int] = {}
        task_threads: dict[int, set[int]] = {}
        for r in jobs:
            root_locals = r["frames"][0]["locals"]
            assert r["thread_id"] == root_locals["owner_ident"]
            assert r["thread"] == root_locals["owner"]
            assert r["task"]["name"].startswith(r["thread"] + "/job")
            by_thread[r["thread"]] = by_thread.get(r["thread"], 0) + 1
            task_threads.setdefault(r["task"]["id"], set()).add(r["thread_id"])
        assert by_thread == {f"loop-{n}": JOBS * ITERATIONS * 4 for n in range(4)}
        assert len(task_threads) == len(factories) * JOBS
        assert all(len(idents) == 1 for idents in task_threads.values())
        per_task: dict[int, list[str]] = {}
        for r in jobs:
            per_task.setdefault(r["task"]["id"], []).append(r["event"])
        assert all(ev == ["suspend", "resume"] * (2 * ITERATIONS) for ev in per_task.values())

    def test_thread_names_survive_the_thread(self) -> None:
        """Records rendered after their thread ended still carry that thread's name."""
        sink = _GateSink()
        assert _install._install(Config(task_done=False, blocked_ms=0), (), sink=sink)
        try:
            asyncio.run(_job(0))  # starts the writer; its first write waits
            assert sink.entered.wait(10)
            threads = _start_threads([None, None])
            for thread in threads:
                thread.join(20)
            sink.gate.set()
            assert coroscope.flush(10)
        finally:
            sink.gate.set()
            coroscope.uninstall()
        jobs = [r for r in _switches(sink.records()) if r["task"]["name"].startswith("loop-")]
        assert len(jobs) == 2 * JOBS * ITERATIONS * 4
        assert {r["thread"] for r in jobs} == {"loop-0", "loop-1"}
        for r in jobs:
            assert r["thread"] == r["frames"][0]["locals"]["owner"]

    def test_tasks_of_a_loop_running_before_install(self) -> None:
        """A task already running in another thread's loop is logged from its next switch on."""
        started = threading.Event()
        release = threading.Event()

        async def long_runner() -> None:
            runner_local = "before-install"
            started.set()
            await asyncio.to_thread(release.wait, 10)
            for _ in range(5):
                await asyncio.sleep(0.001)
            del runner_local

        thread = threading.Thread(target=asyncio.run, args=(long_runner(),), name="early")
        thread.start()
        try:
            assert started.wait(10)
            with capture_records(**QUIET) as records:
                release.set()
                thread.join(20)
        finally:
            release.set()
            thread.join(20)
        runner = [
            r for r in _switches(records) if r["frames"][0]["function"].endswith("long_runner")
        ]
        assert len(runner) >= 10
        assert all(r["thread"] == "early" for r in runner)


# -- coroutines without a task --------------------------------------------------------------


@types.coroutine
def _pause(tag: object) -> Generator[object, None, None]:
    yield tag


async def _hand_driven(n: int) -> int:
    hand_local = "hand"
    for i in range(n):
        await _pause(("tick", i))
    del hand_local
    return n


def _drive(coro: Any) -> tuple[list[object], object]:
    """A minimal non-asyncio runner: send None until the coroutine returns."""
    yielded = []
    try:
        while True:
            yielded.append(coro.send(None))
    except StopIteration as stop:
        return yielded, stop.value


def _errors() -> int:
    session = _install._session
    assert session is not None
    return session.capture.errors


class TestHandDriven:
    """Coroutines driven by hand or by another runner: never logged, never mixed into a task."""

    def test_outside_any_loop(self) -> None:
        """Driven with send() where no loop runs: no record, correct result; tasks around it are logged."""

        async def task_body() -> None:
            await asyncio.sleep(0)

        with capture_records(**QUIET) as records:
            assert _drive(_hand_driven(3)) == ([("tick", 0), ("tick", 1), ("tick", 2)], 3)
            asyncio.run(task_body())
            assert _drive(_hand_driven(2))[1] == 2
            assert _errors() == 0
        assert [(r["event"], _functions(r)) for r in joined(records)] == [
            ("suspend", ["task_body"]),
            ("resume", ["task_body"]),
        ]

    def test_inside_a_task_is_part_of_nothing(self) -> None:
        """A task that drives coroutines by hand has exactly its own switches, with only its own frames."""

        async def driver() -> list[object]:
            driver_local = "driver"
            await asyncio.sleep(0)  # own switch 1
            out, value = _drive(_hand_driven(3))  # driven from a plain function
            manual = _hand_driven(2)
            out.append(manual.send(None))  # driven straight from this coroutine
            await asyncio.sleep(0.001)  # own switch 2, with `manual` half-way
            out.append(manual.send(None))
            with pytest.raises(StopIteration):
                manual.send(None)
            thrown = _hand_driven(5)
            thrown.send(None)
            with pytest.raises(KeyError):
                thrown.throw(KeyError("x"))
            closed = _hand_driven(5)
            closed.send(None)
            closed.close()
            await asyncio.sleep(0)  # own switch 3
            del driver_local
            return [*out, value]

        with capture_records(exclude=(), **QUIET) as records:
            assert asyncio.run(driver())[-1] == 3
            assert _errors() == 0
        switches = _switches(records)
        assert [r["event"] for r in switches] == ["suspend", "resume"] * 3
        assert len({r["task"]["id"] for r in switches}) == 1
        for r in switches:
            assert r["frames"][0]["function"].endswith("driver")
            assert "_hand_driven" not in _functions(r)
            assert "_pause" not in _functions(r)
        sleeping = switches[2]
        assert _functions(sleeping) == ["driver", "sleep"]
        assert sleeping["frames"][0]["locals"]["manual"].startswith("<coroutine")
        assert sleeping["awaiting"]["type"] == "Future"

    def test_same_code_as_a_task_and_by_hand(self) -> None:
        """A coroutine function that is also a task root: its hand-driven instances are not logged."""

        async def shared(n: int) -> int:
            for _ in range(n):
                await asyncio.sleep(0)
            return n

        async def main() -> int:
            first = await asyncio.create_task(shared(2), name="shared-task")  # root code now
            yielded, value = _drive(shared(3))  # the same code, by hand, inside main's task
            assert yielded == [None, None, None]
            second = await asyncio.create_task(shared(1), name="shared-task-2")
            return first + int(str(value)) + second

        with capture_records(**QUIET) as records:
            assert asyncio.run(main()) == 6
            assert _errors() == 0
        counts: dict[str, int] = {}
        for r in _switches(records):
            counts[r["task"]["name"]] = counts.get(r["task"]["name"], 0) + 1
        main_name = next(name for name in counts if not name.startswith("shared"))
        assert counts == {"shared-task": 4, "shared-task-2": 2, main_name: 4}

    def test_in_a_loop_callback_and_another_runner_thread(self) -> None:
        """Driven from a loop callback (no current task) or by a runner in another thread: no record."""
        outcome: dict[str, object] = {}

        def in_callback() -> None:
            outcome["callback"] = _drive(_hand_driven(2))[1]

        def runner_thread() -> None:
            outcome["thread"] = sum(int(str(_drive(_hand_driven(k))[1])) for k in range(1, 30))

        async def main() -> None:
            asyncio.get_running_loop().call_soon(in_callback)
            other = threading.Thread(target=runner_thread, name="runner")
            other.start()
            for _ in range(3):
                await asyncio.sleep(0.001)
            await asyncio.to_thread(other.join, 10)

        with capture_records(**QUIET) as records:
            asyncio.run(main())
            assert _errors() == 0
        assert outcome == {"callback": 2, "thread": sum(range(1, 30))}
        switches = _switches(records)
        assert {r["thread"] for r in switches} == {"MainThread"}
        assert all(_functions(r) == ["main"] for r in switches)
        assert len(switches) == 8
