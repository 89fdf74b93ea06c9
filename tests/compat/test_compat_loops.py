"""uvloop: the same records as asyncio's default loop, with nothing patched."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from coroscope.testing import capture_records
from helpers import joined

uvloop = pytest.importorskip("uvloop")

HERE = __file__
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {
    "asyncio": None,
    "uvloop": uvloop.new_event_loop,
}
_ADDRESS = re.compile(r"0x[0-9a-f]+")


def _run(factory: Callable[[], asyncio.AbstractEventLoop] | None, coro: Any) -> Any:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _line_of(func: Any, marker: str) -> int:
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(lines) if marker in text)


def _normalise(value: Any) -> Any:
    """Locals with object addresses made comparable between two runs."""
    if isinstance(value, str):
        return _ADDRESS.sub("0x", value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _signature(
    records: list[dict[str, Any]], volatile: tuple[str, ...] = ()
) -> dict[str, list[tuple[Any, ...]]]:
    """Per task: (event, root function, innermost user function, line, its locals, awaited type, exception).

    Tasks are keyed by name, unnamed ones (``Task-N``, numbered process-wide) by root function;
    locals named in ``volatile`` (a port number) are left out.
    """
    per_task: dict[str, list[tuple[Any, ...]]] = {}
    for r in joined(records):
        if r["event"] not in ("suspend", "resume"):
            continue
        frames = r["frames"]
        key = r["task"]["name"]
        if key.startswith("Task-"):
            key = frames[0]["function"]
        user = [f for f in frames if f["file"] == HERE] or frames
        inner = user[-1]
        per_task.setdefault(key, []).append(
            (
                r["event"],
                frames[0]["function"],
                inner["function"],
                inner["line"],
                _normalise({k: v for k, v in inner["locals"].items() if k not in volatile}),
                (r.get("awaiting") or {}).get("type"),
                r.get("exception"),
            )
        )
    return per_task


def _collapse(steps: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Merge consecutive suspend/resume pairs at the same user frame and locals.

    A loop's own internals may suspend a task more than once for one user-level await
    (asyncio's ``open_connection`` awaits twice where uvloop's C code awaits once).
    """
    out: list[tuple[Any, ...]] = []
    for step in steps:
        if (
            len(out) >= 2
            and step[0] == "suspend"
            and out[-1][0] == "resume"
            and out[-2][1:5] == step[1:5]
        ):
            out.pop()  # drop the resume; the repeated suspend joins the previous one
            continue
        out.append(step)
    # A merged wait ends on whichever await came last, and that is the loop's timing
    # (a child process may or may not have exited when its pipes close): a resume names
    # what its kept suspend awaited.
    for i, step in enumerate(out):
        if (
            step[0] == "resume"
            and i
            and out[i - 1][0] == "suspend"
            and out[i - 1][1:5] == step[1:5]
        ):
            out[i] = (*step[:5], out[i - 1][5], *step[6:])
    return out


# -- a program exercising the common asyncio features ---------------------------------


async def _leaf(k: int) -> int:
    leaf_local = k * 2
    await asyncio.sleep(0.001)
    return leaf_local


async def _worker(n: int) -> int:
    total = 0
    for i in range(n):
        total += await _leaf(i)
    await asyncio.sleep(0)
    return total


async def _producer(queue: asyncio.Queue[int | None], n: int) -> None:
    for item in range(n):
        await asyncio.sleep(0.002)
        await queue.put(item)
    await queue.put(None)


async def _consumer(queue: asyncio.Queue[int | None]) -> list[int]:
    got: list[int] = []
    while (item := await queue.get()) is not None:
        got.append(item)
    return got


async def _sleeper() -> None:
    await asyncio.sleep(10)


async def _program() -> tuple[int, list[int], int]:
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    async with asyncio.TaskGroup() as tg:
        worked = tg.create_task(_worker(3), name="worker")
        consumed = tg.create_task(_consumer(queue), name="consumer")
        tg.create_task(_producer(queue, 3), name="producer")
    victim = asyncio.create_task(_sleeper(), name="victim")
    await asyncio.sleep(0.002)
    victim.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await victim
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.002):
            await asyncio.sleep(1)
    summed = await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2, 3])
    return worked.result(), consumed.result(), summed


class TestSameRecords:
    """One program, two loops: coroscope's records agree."""

    def test_program_records_match_default_loop(self) -> None:
        """TaskGroup, Queue, cancel, timeout and executor give the same per-task records on both loops."""
        signatures = {}
        for name, factory in LOOPS.items():
            with capture_records(task_done=False, blocked_ms=0) as records:
                assert _run(factory, _program()) == (6, [0, 1, 2], 6)
            signatures[name] = _signature(records)
        default, uv = signatures["asyncio"], signatures["uvloop"]
        assert set(default) == {"_program", "worker", "consumer", "producer", "victim"}
        assert uv == default
        # The comparison is not vacuous: it holds the expected content.
        worker = default["worker"]
        assert [s[0] for s in worker] == ["suspend", "resume"] * 4
        assert [s[4] for s in worker[:6:2]] == [{"k": k, "leaf_local": 2 * k} for k in range(3)]
        assert default["victim"][-1][6] == "CancelledError"
        assert any(s[5] == "Future" and s[0] == "suspend" for s in default["_program"])

    def test_uvloop_never_calls_handle_run(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Patching Handle._run sees nothing on uvloop, while coroscope captures the same switches."""
        calls = {"n": 0}
        original = asyncio.events.Handle._run

        def counting(self: asyncio.Handle) -> None:
            calls["n"] += 1
            original(self)

        monkeypatch.setattr(asyncio.events.Handle, "_run", counting)
        seen = {}
        for name, factory in LOOPS.items():
            calls["n"] = 0
            with capture_records(task_done=False, blocked_ms=0) as records:
                assert _run(factory, _worker(3)) == 6
            seen[name] = (calls["n"], _signature(records))
        assert seen["asyncio"][0] > 0
        assert seen["uvloop"][0] == 0
        assert seen["uvloop"][1] == seen["asyncio"][1]
        assert len(seen["uvloop"][1]["_worker"]) == 8

    def test_streams_and_subprocess_match_at_user_level(self) -> None:
        """TCP streams and a subprocess: the user frames' switches agree once loop-internal repeats are merged."""

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        async def client(port: int) -> list[bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for word in (b"alpha\n", b"beta\n"):
                writer.write(word)
                answers.append(await reader.readline())  # client-readline
            writer.close()
            await writer.wait_closed()
            return answers

        async def child() -> bytes:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; sys.stdout.write(sys.stdin.read().upper())",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate(b"ping")
            return out

        async def main() -> tuple[list[bytes], bytes]:
            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                answers = await asyncio.create_task(client(port), name="client")
            out = await asyncio.create_task(child(), name="child")
            return answers, out

        per_loop = {}
        for name, factory in LOOPS.items():
            with capture_records(task_done=False, blocked_ms=0) as records:
                assert _run(factory, main()) == ([b"ALPHA\n", b"BETA\n"], b"PING")
            signature = _signature(records, volatile=("port",))
            per_loop[name] = {k: _collapse(v) for k, v in signature.items()}
        default, uv = per_loop["asyncio"], per_loop["uvloop"]
        for task in ("client", "child"):
            assert uv[task] == default[task], task
        handler = next(k for k in default if k.endswith("echo"))
        assert uv[handler] == default[handler]
        readline = _line_of(client, "client-readline")
        readline_words = [
            s[4]["word"] for s in default["client"] if s[0] == "suspend" and s[3] == readline
        ]
        assert readline_words == ["b'alpha\\n'", "b'beta\\n'"]

    def test_uvloop_run_wraps_main(self) -> None:
        """uvloop.run(main()) makes uvloop's wrapper() the task's root; main is the next frame."""

        async def main() -> int:
            main_local = 7
            await asyncio.sleep(0)
            return main_local

        with capture_records(task_done=False, blocked_ms=0) as records:
            assert uvloop.run(main()) == 7
        switches = [r for r in joined(records) if r["event"] in ("suspend", "resume")]
        assert [r["event"] for r in switches] == ["suspend", "resume"]
        for r in switches:
            assert r["frames"][0]["function"] == "run.<locals>.wrapper"
            assert r["frames"][1]["function"].endswith("main")
            assert r["frames"][1]["locals"] == {"main_local": 7}


class TestWatchdog:
    """The blocked-loop watchdog works through call_soon_threadsafe on both loops."""

    @pytest.mark.parametrize("loop_name", list(LOOPS))
    def test_blocked_loop_reported(self, loop_name: str) -> None:
        """A task that blocks its loop for 250 ms is reported blocked (with its stack), then unblocked."""

        async def blocker() -> None:
            await asyncio.sleep(0.01)
            time.sleep(0.25)  # blocks the loop
            await asyncio.sleep(0)

        with capture_records(task_done=False, blocked_ms=60) as records:
            _run(LOOPS[loop_name], blocker())
        blocked = [r for r in records if r["event"] == "loop.blocked"]
        unblocked = [r for r in records if r["event"] == "loop.unblocked"]
        assert len(blocked) == 1
        assert len(unblocked) == 1
        assert any(f["function"].endswith("blocker") for f in blocked[0]["stack"])
        assert 60 <= blocked[0]["blocked_ms"] < 250
        assert unblocked[0]["blocked_ms"] >= 200
