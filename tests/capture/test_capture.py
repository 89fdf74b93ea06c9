"""What the capture records for real asyncio programs."""

from __future__ import annotations

import asyncio
import contextlib
import dis
import sys
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

import coroscope
from coroscope.testing import capture_records
from helpers import joined, shapes

HERE = __file__


def _switches(records: list[dict[str, Any]], task: str | None = None) -> list[dict[str, Any]]:
    out = [r for r in joined(records) if r["event"] in ("suspend", "resume")]
    if task is not None:
        out = [r for r in out if r["task"]["name"] == task]
    return out


def _line_of(func: Any, marker: str) -> int:
    """The line number of the source line of ``func`` containing ``marker``."""
    import inspect

    lines, first = inspect.getsourcelines(func)
    for i, text in enumerate(lines):
        if marker in text:
            return first + i
    raise AssertionError(f"{marker!r} not in {func.__name__}")


def _instruction_lines(code: types.CodeType) -> dict[int, int | None]:
    return {
        ins.offset: ins.positions.lineno if ins.positions else None
        for ins in dis.get_instructions(code)
    }


async def countdown(n: int) -> None:
    while n > 0:
        print(f"Count: {n}")
        await asyncio.sleep(0.01)  # countdown-await
        n -= 1


class TestCountdown:
    """The demo program from the README, checked field by field."""

    def test_n_line_offset_and_awaited_future(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Each suspension shows n=3,2,1, the await's line, an offset on that line and the sleep future."""
        with capture_records(exclude=()) as records:
            asyncio.run(countdown(3))
        suspends = [r for r in _switches(records) if r["event"] == "suspend"]
        assert [s["frames"][0]["locals"]["n"] for s in suspends] == [3, 2, 1]
        line = _line_of(countdown, "countdown-await")
        offsets = _instruction_lines(countdown.__code__)
        for s in suspends:
            root = s["frames"][0]
            assert root["function"] == "countdown"
            assert root["file"] == HERE
            assert root["line"] == line
            assert offsets[root["lasti"]] == line
            assert root["blocks"] == [{"kind": "while", "line": line - 2}]
            assert root["awaits"] == {"type": "coroutine", "name": "sleep"}
            inner = s["frames"][-1]
            assert inner["function"] == "sleep"
            assert inner["locals"]["delay"] == 0.01
            assert s["awaiting"]["type"] == "Future"
            assert s["awaiting"]["repr"].startswith("<Future pending")
        assert capsys.readouterr().out.splitlines() == ["Count: 3", "Count: 2", "Count: 1"]

    def test_resumes_continue_from_the_suspension(self) -> None:
        """Every suspend is followed by a resume of the same task at the same place, with its wait."""
        with capture_records() as records:
            asyncio.run(countdown(3))
        switches = [r for r in records if r["event"] in ("suspend", "resume")]
        assert [r["event"] for r in switches] == ["suspend", "resume"] * 3
        for suspend, resume in zip(switches[::2], switches[1::2], strict=True):
            assert resume["task"] == suspend["task"]
            # The suspend was written: the resume names it instead of repeating its chain.
            assert resume["suspend_seq"] == suspend["seq"] and "frames" not in resume
            assert resume["waited_ms"] >= 5.0
            assert "exception" not in resume
        # The first step is measured from the task's start.
        assert all(s["step_ms"] >= 0 for s in switches[::2])

    def test_common_keys(self) -> None:
        """Every record carries event, level, logger, ISO timestamp, pid, thread and a dense seq."""
        import datetime
        import os

        with capture_records() as records:
            asyncio.run(countdown(2))
        assert records
        for r in records:
            assert r["logger"] == "coroscope"
            assert r["level"] == "info"
            assert r["pid"] == os.getpid()
            assert r["thread"] == "MainThread"
            stamp = datetime.datetime.fromisoformat(r["timestamp"])
            assert stamp.utcoffset() == datetime.timedelta(0)
        assert [r["seq"] for r in records] == list(
            range(records[0]["seq"], records[0]["seq"] + len(records))
        )
        assert len({r["task"]["id"] for r in records}) == 1


async def _outer_chain(values: list[int]) -> int:
    captured = "outer-cell"

    async def middle(depth: int) -> int:
        middle_local = depth * 10

        async def inner() -> int:
            inner_local = f"{captured}-{middle_local}"
            await asyncio.sleep(0.001)  # inner-await
            return len(inner_local)

        return await inner() + middle_local

    total = 0
    for v in values:
        total += await middle(v)
    return total + len(captured)


class TestChains:
    """Await chains: nesting, closures, generator-based coroutines and async generators."""

    def test_nested_chain_with_locals_and_closures(self) -> None:
        """A chain of three coroutines shows each frame, root first, with locals and closure cells."""
        with capture_records() as records:
            asyncio.run(_outer_chain([1, 2]))
        suspends = [r for r in _switches(records) if r["event"] == "suspend"]
        assert len(suspends) == 2
        for s, v in zip(suspends, [1, 2], strict=True):
            names = [f["function"] for f in s["frames"]]
            assert names[:3] == [
                "_outer_chain",
                "_outer_chain.<locals>.middle",
                "_outer_chain.<locals>.middle.<locals>.inner",
            ]
            outer, middle, inner = s["frames"][:3]
            assert outer["locals"]["captured"] == "outer-cell"  # a cell variable
            assert outer["locals"]["v"] == v
            assert middle["locals"]["depth"] == v
            assert middle["locals"]["middle_local"] == v * 10
            assert inner["locals"]["captured"] == "outer-cell"  # a free variable
            assert inner["locals"]["middle_local"] == v * 10  # a free variable
            assert inner["locals"]["inner_local"] == f"outer-cell-{v * 10}"
            assert inner["line"] == _line_of(_outer_chain, "inner-await")
            assert shapes(outer["blocks"]) == [
                {"kind": "for", "line": _line_of(_outer_chain, "for v in values")}
            ]
            assert outer["awaits"] == {"type": "coroutine", "name": "_outer_chain.<locals>.middle"}

    def test_generator_based_coroutine_and_sleep_zero(self) -> None:
        """`types.coroutine` helpers (as behind sleep(0)) appear in the chain; a bare yield awaits None."""

        @types.coroutine
        def legacy(n: int) -> Any:
            legacy_local = n + 1
            yield
            return legacy_local

        async def main() -> int:
            await asyncio.sleep(0)
            return int(await legacy(4))

        with capture_records(exclude=()) as records:
            asyncio.run(main())
        suspends = [r for r in _switches(records) if r["event"] == "suspend"]
        assert len(suspends) == 2
        sleep0, legacy_switch = suspends
        assert [f["function"] for f in sleep0["frames"]] == [
            "TestChains.test_generator_based_coroutine_and_sleep_zero.<locals>.main",
            "sleep",
            "__sleep0",
        ]
        assert sleep0["awaiting"] == {"type": "NoneType", "repr": "None"}
        last = legacy_switch["frames"][-1]
        assert last["function"].endswith("legacy")
        assert last["locals"] == {"n": 4, "legacy_local": 5}
        assert legacy_switch["frames"][0]["awaits"]["type"] == "generator"

    def test_async_for_over_async_generator(self) -> None:
        """A task parked in `async for` shows the async generator's frame and its locals."""

        async def ticks(limit: int) -> AsyncIterator[int]:
            for i in range(limit):
                await asyncio.sleep(0.001)  # agen-await
                yield i

        async def consume() -> list[int]:
            seen = []
            async for tick in ticks(3):  # async-for
                seen.append(tick)
            return seen

        with capture_records(exclude=()) as records:
            assert asyncio.run(consume()) == [0, 1, 2]
        suspends = [r for r in _switches(records) if r["event"] == "suspend"]
        assert len(suspends) == 3
        for i, s in enumerate(suspends):
            root, agen = s["frames"][0], s["frames"][1]
            assert root["function"].endswith("consume")
            assert root["awaits"] == {
                "type": "async_generator_asend",
                "name": "TestChains.test_async_for_over_async_generator.<locals>.ticks",
            }
            assert root["blocks"][-1]["kind"] == "async for"
            assert agen["function"].endswith("ticks")
            assert agen["locals"]["i"] == i
            assert agen["locals"]["limit"] == 3
            assert shapes(agen["blocks"]) == [{"kind": "for", "line": agen["line"] - 1}]
            assert s["frames"][-1]["function"] == "sleep"


class TestConcurrency:
    """gather, TaskGroup, eager tasks and cancellation."""

    def test_gather_and_await_task(self) -> None:
        """Children of gather are their own tasks; the parent awaits the gathering future."""

        async def child(k: int) -> int:
            await asyncio.sleep(0.001 * k)
            return k

        async def parent() -> list[int]:
            return await asyncio.gather(child(1), child(2), child(3))

        with capture_records() as records:
            assert asyncio.run(parent()) == [1, 2, 3]
        by_task: dict[str, list[dict[str, Any]]] = {}
        for r in _switches(records):
            by_task.setdefault(r["task"]["name"], []).append(r)
        assert len(by_task) == 4
        parent_suspend = next(
            r
            for r in records
            if r["event"] == "suspend" and r["frames"][0]["function"].endswith("parent")
        )
        assert parent_suspend["awaiting"]["type"] == "_GatheringFuture"
        assert "children=3" in parent_suspend["awaiting"]["repr"]
        child_ids = {
            r["task"]["id"]
            for r in _switches(records)
            if r["frames"][0]["function"].endswith("child")
        }
        assert len(child_ids) == 3
        for name, switches in by_task.items():
            assert [r["event"] for r in switches] == ["suspend", "resume"] * (len(switches) // 2), (
                name
            )

    def test_task_group_and_awaiting_a_task(self) -> None:
        """TaskGroup children are captured; a task awaiting another task names it."""

        async def worker(delay: float) -> str:
            await asyncio.sleep(delay)
            return "done"

        async def main() -> None:
            async with asyncio.TaskGroup() as tg:  # taskgroup
                tg.create_task(worker(0.002), name="w1")
                tg.create_task(worker(0.001), name="w2")
            t = asyncio.create_task(worker(0.001), name="w3")
            await t

        with capture_records(exclude=()) as records:
            asyncio.run(main())
        names = {r["task"]["name"] for r in _switches(records)}
        assert {"w1", "w2", "w3"} <= names
        main_suspends = [
            r
            for r in records
            if r["event"] == "suspend" and r["frames"][0]["function"].endswith("main")
        ]
        aexit = main_suspends[0]
        assert aexit["frames"][1]["function"] == "TaskGroup.__aexit__"
        awaiting_task = main_suspends[-1]
        assert awaiting_task["awaiting"]["type"] == "Task"
        assert "name='w3'" in awaiting_task["awaiting"]["repr"]
        assert awaiting_task["frames"][0]["awaits"] == {"type": "Task", "name": "w3"}

    def test_eager_task_factory(self) -> None:
        """With eager tasks the first suspension (inside the creator's step) is attributed to the new task."""

        async def eager_child() -> None:
            child_local = "eager"
            await asyncio.sleep(0.001)
            del child_local

        async def main() -> None:
            asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
            task = asyncio.create_task(eager_child(), name="eager-1")
            await task

        with capture_records() as records:
            asyncio.run(main())
        eager = [
            r for r in _switches(records) if r["frames"][0]["function"].endswith("eager_child")
        ]
        assert [r["event"] for r in eager] == ["suspend", "resume"]
        assert eager[0]["frames"][0]["locals"]["child_local"] == "eager"
        # One task throughout; asyncio names an eager task only after its first step.
        assert eager[0]["task"]["id"] == eager[1]["task"]["id"]
        assert eager[1]["task"]["name"] == "eager-1"
        main_ids = {
            r["task"]["id"]
            for r in _switches(records)
            if r["frames"][0]["function"].endswith("main")
        }
        assert eager[0]["task"]["id"] not in main_ids

    def test_cancellation_resumes_with_exception(self) -> None:
        """Cancelling a suspended task produces a resume carrying CancelledError."""

        async def sleeper() -> None:
            try:
                await asyncio.sleep(10)  # cancel-here
            except asyncio.CancelledError:
                raise

        async def main() -> None:
            task = asyncio.create_task(sleeper(), name="victim")
            await asyncio.sleep(0.001)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        with capture_records() as records:
            asyncio.run(main())
        victim = _switches(records, "victim")
        assert [r["event"] for r in victim] == ["suspend", "resume"]
        resume = victim[1]
        assert resume["exception"] == "CancelledError"
        assert resume["frames"][0]["line"] == _line_of(sleeper, "cancel-here")
        assert resume["frames"][0]["blocks"] == [{"kind": "try", "line": _line_of(sleeper, "try:")}]
        assert resume["waited_ms"] > 0


class TestBlocks:
    """The `blocks` enclosing a suspension point."""

    def test_for_while_try_except_finally_async_with(self) -> None:
        """Suspensions inside nested for/while/try/except/finally/async with report their blocks, innermost last."""

        @contextlib.asynccontextmanager
        async def resource() -> AsyncIterator[None]:
            yield

        async def main() -> None:
            for i in range(1):  # b-for
                while i < 1:  # b-while
                    try:  # b-try
                        async with resource():  # b-with
                            await asyncio.sleep(0)  # b-await-1
                        raise ValueError
                    except ValueError:  # b-except
                        await asyncio.sleep(0)  # b-await-2
                    finally:  # b-finally
                        await asyncio.sleep(0)  # b-await-3
                    i += 1

        def line(marker: str) -> int:
            return _line_of(main, marker)

        with capture_records() as records:
            asyncio.run(main())
        roots = [r["frames"][0] for r in records if r["event"] == "suspend"]
        assert [f["line"] for f in roots] == [
            line("b-await-1"),
            line("b-await-2"),
            line("b-await-3"),
        ]
        outer = [{"kind": "for", "line": line("b-for")}, {"kind": "while", "line": line("b-while")}]
        assert shapes(roots[0]["blocks"]) == [
            *outer,
            {"kind": "try", "line": line("b-try")},
            {"kind": "async with", "line": line("b-with")},
        ]
        assert shapes(roots[1]["blocks"]) == [*outer, {"kind": "except", "line": line("b-except")}]
        assert shapes(roots[2]["blocks"]) == [
            *outer,
            {"kind": "finally", "line": line("b-finally")},
        ]


class TestLocalsSetting:
    """COROSCOPE_LOCALS and redaction of secret-looking names."""

    def test_locals_off(self) -> None:
        """With locals off, frames carry no locals at all."""
        with capture_records(locals="off") as records:
            asyncio.run(countdown(1))
        assert _switches(records)
        assert all(f["locals"] is None for r in _switches(records) for f in r["frames"])

    def test_secret_names_are_redacted(self) -> None:
        """Locals named like secrets are logged as [redacted]."""

        async def login() -> None:
            user_password = "hunter2"
            api_key = "sk-123"
            session_id = "abc"
            username = "alice"
            await asyncio.sleep(0)
            del user_password, api_key, session_id, username

        with capture_records() as records:
            asyncio.run(login())
        local_values = records[0]["frames"][0]["locals"]
        assert local_values["username"] == "alice"
        for name in ("user_password", "api_key", "session_id"):
            assert local_values[name] == "[redacted]"
        assert b"hunter2" not in repr(records).encode()


def test_python_version_supported() -> None:
    """The suite runs on the versions coroscope supports."""
    assert sys.version_info >= (3, 12)


class TestFinalStep:
    """A task's last step, ended by its return or its exception, is a step like the others."""

    def test_slow_final_step_is_reported(self) -> None:
        """A handler that blocks then returns gets a slow-step warning and its run time."""

        async def handler() -> str:
            await asyncio.sleep(0)
            time.sleep(0.15)  # blocks, then returns without another await
            return "done"

        for mode in ("all", "slow"):
            with capture_records(mode=mode, slow_step_ms=100) as records:
                asyncio.run(handler())
            end = [r for r in records if r["event"] == "end"]
            assert len(end) == 1, mode
            assert end[0]["level"] == "warning" and end[0]["slow"] == "step"
            assert end[0]["step_ms"] >= 150
            assert (
                end[0]["frames"][0]["function"]
                == "TestFinalStep.test_slow_final_step_is_reported.<locals>.handler"
            )
            assert end[0]["resumed_at"]["function"] == end[0]["frames"][0]["function"]
            done = next(r for r in records if r["event"] == "task.done")
            assert done["run_ms"] >= 150, mode

    def test_slow_final_step_ending_in_an_exception(self) -> None:
        """A final step that raises says which exception ended it."""

        async def handler() -> None:
            time.sleep(0.12)
            raise KeyError("gone")

        with capture_records(slow_step_ms=100) as records, contextlib.suppress(KeyError):
            asyncio.run(handler())
        end = next(r for r in records if r["event"] == "end")
        assert end["exception"] == "KeyError" and end["step_ms"] >= 120

    def test_quick_final_step_writes_no_end(self) -> None:
        """Only a slow final step has a record; every task's run time counts its last step."""
        with capture_records() as records:
            asyncio.run(countdown(1))
        assert not [r for r in records if r["event"] == "end"]


class TestUnknownHalves:
    """A switch whose other half was not seen adds nothing to run or wait time."""

    def test_adopted_task_cancelled(self) -> None:
        """A task adopted while suspended, then cancelled: its step and wait times stay exact."""
        from coroscope import _api

        async def sleeper() -> None:
            await asyncio.sleep(10)

        async def main() -> tuple[int, int, int]:
            task = asyncio.create_task(sleeper())
            await asyncio.sleep(0)  # suspended before coroscope is installed
            assert coroscope.install(output="stderr", environ={}, task_done=False)
            await asyncio.sleep(0)  # adoption runs on this loop
            session = _api._session
            assert session is not None
            state = session.capture.tasks.of_task(task)
            assert state is not None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return state.wait_ns, state.run_ns, state.switches

        try:
            wait_ns, run_ns, switches = asyncio.run(main())
        finally:
            coroscope.uninstall()
        assert wait_ns == 0 and run_ns >= 0 and switches == 0
