"""anyio, aiohttp and asyncio's own features, monitored: what the records show."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import inspect
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from aggregators import wait_until
from coroscope.testing import capture_records
from helpers import clean_env, joined, read_records, run_python

anyio = pytest.importorskip("anyio")
aiohttp = pytest.importorskip("aiohttp")
web = pytest.importorskip("aiohttp.web")

QUIET = {"task_done": False, "blocked_ms": 0}  # switch records only


def _switches(records: list[dict[str, Any]], task: str | None = None) -> list[dict[str, Any]]:
    records = joined(records)  # resumes take their suspend's chain
    out = [r for r in records if r["event"] in ("suspend", "resume")]
    if task is not None:
        out = [r for r in out if r["task"]["name"] == task]
    return out


def _functions(record: dict[str, Any]) -> list[str]:
    return [f["function"].rsplit(".", 1)[-1] for f in record["frames"]]


def _frame(record: dict[str, Any], function: str) -> dict[str, Any]:
    """The frame of ``function`` (last part of the qualified name) in a record's chain."""
    return next(f for f in record["frames"] if f["function"].rsplit(".", 1)[-1] == function)


def _line_of(func: Any, marker: str) -> int:
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(lines) if marker in text)


def _alternate(switches: list[dict[str, Any]]) -> bool:
    """Each task's switches go suspend, resume, suspend, resume ..."""
    by_task: dict[int, list[str]] = {}
    for r in switches:
        by_task.setdefault(r["task"]["id"], []).append(r["event"])
    return all(
        events == ["suspend", "resume"] * (len(events) // 2) + ["suspend"] * (len(events) % 2)
        for events in by_task.values()
    )


class TestAnyio:
    """anyio on its asyncio backend: tasks are asyncio tasks under anyio's wrappers."""

    def test_task_group_children_with_locals(self) -> None:
        """start_soon children are their own tasks (named as given), with their frames and locals."""

        async def child(n: int) -> None:
            anyio_local = n * 3
            await anyio.sleep(0.001)  # child-sleep
            del anyio_local

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(child, i, name=f"anyio-child-{i}")

        with capture_records(**QUIET) as records:
            anyio.run(main, backend="asyncio")
        switches = _switches(records)
        assert _alternate(switches)
        for i in range(3):
            mine = _switches(records, f"anyio-child-{i}")
            assert [r["event"] for r in mine] == ["suspend", "resume"]
            frame = _frame(mine[0], "child")
            assert frame["locals"] == {"n": i, "anyio_local": 3 * i}
            assert frame["line"] == _line_of(child, "child-sleep")
            # anyio runs the child inside its own coroutine: that is the task's root.
            assert mine[0]["frames"][0]["function"] != frame["function"]
        main_records = [
            r for r in switches if any(f["function"].endswith("main") for f in r["frames"])
        ]
        assert main_records, "the main task (anyio's wrapper around main) is recorded"
        assert len({r["task"]["id"] for r in switches}) == 4

    def test_run_does_not_leak_event_loop(self) -> None:
        """After anyio.run (and asyncio.run) returns, its event loop can be garbage collected."""

        async def main() -> Any:
            await anyio.to_thread.run_sync(lambda: None)
            return weakref.ref(asyncio.get_running_loop())

        async def plain() -> Any:
            await asyncio.sleep(0)
            return weakref.ref(asyncio.get_running_loop())

        def freed(loop: Any) -> bool:
            gc.collect()
            return loop() is None

        with capture_records(**QUIET) as records:
            anyio_loop = anyio.run(main, backend="asyncio")
            asyncio_loop = asyncio.run(plain())
            # (The watchdog thread holds a loop during its check, a few microseconds; on a
            # loaded machine it may be preempted there.)
            wait_until(lambda: freed(anyio_loop) and freed(asyncio_loop), 5, "the loops freed")
        assert _switches(records)

    def test_to_thread_run_sync(self) -> None:
        """anyio.to_thread.run_sync: the task waits on an asyncio Future, for as long as the thread runs."""

        async def main() -> int:
            result: int = await anyio.to_thread.run_sync(_blocking_sum, [1, 2, 3])
            return result

        with capture_records(**QUIET) as records:
            assert anyio.run(main, backend="asyncio") == 6
        switches = _switches(records)
        assert _alternate(switches)
        waits = [
            r for r in switches if r["event"] == "suspend" and r["awaiting"]["type"] == "Future"
        ]
        assert len(waits) == 1
        assert _functions(waits[0])[1:4] == ["main", "run_sync", "run_sync_in_worker_thread"]
        resumed = switches[switches.index(waits[0]) + 1]
        assert resumed["event"] == "resume"
        assert resumed["suspend_seq"] == waits[0]["seq"]
        assert resumed["waited_ms"] >= 15  # the thread sleeps 20 ms

    def test_memory_object_stream_locals(self) -> None:
        """A receiver parked on a memory object stream shows its frame's locals, not a capture error."""

        async def consumer(receive: Any, got: list[int]) -> None:
            consumer_local = "receiving"
            async with receive:
                async for item in receive:
                    got.append(item)
            del consumer_local

        async def main() -> list[int]:
            got: list[int] = []
            send, receive = anyio.create_memory_object_stream[int](1)
            async with anyio.create_task_group() as tg:
                tg.start_soon(consumer, receive, got, name="consumer")
                async with send:
                    for i in range(2):
                        await anyio.sleep(0.001)
                        await send.send(i)
            return got

        with capture_records(**QUIET) as records:
            assert anyio.run(main, backend="asyncio") == [0, 1]
        parked = [
            _frame(r, "consumer")
            for r in _switches(records, "consumer")
            if r["event"] == "suspend" and "consumer" in _functions(r)
        ]
        assert parked
        for frame in parked:
            assert "[capture error]" not in frame["locals"]
            assert frame["locals"]["consumer_local"] == "receiving"

    def test_move_on_after_cancellation(self) -> None:
        """A cancel scope's timeout is a resume with CancelledError; the wait after it, below the root, shows as a root-only resume."""

        async def main() -> bool:
            with anyio.move_on_after(0.005) as scope:
                await anyio.sleep(1)  # cancelled-sleep
            caught = scope.cancelled_caught
            await anyio.sleep(0.003)  # next-sleep
            return caught

        with capture_records(**QUIET) as records:
            assert anyio.run(main, backend="asyncio") is True
        switches = _switches(records)
        assert [(r["event"], r.get("exception")) for r in switches] == [
            ("suspend", None),
            ("resume", "CancelledError"),
            ("resume", None),
        ]
        suspend, cancelled, after = switches
        assert _frame(suspend, "main")["line"] == _line_of(main, "cancelled-sleep")
        assert cancelled["frames"] == suspend["frames"]
        assert 4 <= cancelled["waited_ms"] < 900
        # The step that ran after the cancellation suspended below anyio's root wrapper,
        # where coroscope does not listen: only the root frame, and no known wait.
        assert len(after["frames"]) == 1
        assert after["frames"][0]["function"] == suspend["frames"][0]["function"]
        assert after["waited_ms"] is None


def _blocking_sum(values: list[int]) -> int:
    time.sleep(0.02)
    return sum(values)


async def _aiohttp_round_trip(names: tuple[str, ...]) -> list[str]:
    async def handle(request: Any) -> Any:
        who = request.match_info["name"]
        greeting = f"hello {who}"
        await asyncio.sleep(0.002)  # handler-await
        return web.Response(text=greeting)

    app = web.Application()
    app.router.add_get("/hi/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bodies = []
    try:
        async with aiohttp.ClientSession() as session:
            for name in names:
                async with session.get(f"http://127.0.0.1:{port}/hi/{name}") as resp:
                    assert resp.status == 200
                    bodies.append(await resp.text())
    finally:
        await runner.cleanup()
    return bodies


class TestAiohttp:
    """A real aiohttp server on loopback, real requests from aiohttp's client."""

    def test_server_and_client_work_and_are_recorded(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Requests succeed; the client's chain (through ClientSession) and the server's connection task are recorded."""
        with capture_records(**QUIET) as records:
            bodies = asyncio.run(_aiohttp_round_trip(("ann", "bob")))
        assert bodies == ["hello ann", "hello bob"]
        switches = _switches(records)
        assert _alternate(switches)
        client = [r for r in switches if "_request" in _functions(r)]
        assert client, "the client task's requests are in the records"
        assert {_frame(r, "_aiohttp_round_trip")["locals"]["name"] for r in client} == {
            "ann",
            "bob",
        }
        assert any(r["frames"][0]["function"] == "RequestHandler.start" for r in switches)
        assert "coroscope" not in capsys.readouterr().err  # no internal error reported
        assert all(
            "[capture error]" not in (f["locals"] or {}) for r in switches for f in r["frames"]
        )

    def test_handler_frames_and_locals(self) -> None:
        """The handler's task shows the handler's frame, its line and its locals computed from the request."""
        with capture_records(**QUIET) as records:
            assert asyncio.run(_aiohttp_round_trip(("ann", "bob"))) == ["hello ann", "hello bob"]
        handler = [r for r in _switches(records) if "handle" in _functions(r)]
        assert [r["event"] for r in handler] == ["suspend", "resume"] * 2
        seen = [_frame(r, "handle")["locals"] for r in handler[::2]]
        assert [(v["who"], v["greeting"]) for v in seen] == [
            ("ann", "hello ann"),
            ("bob", "hello bob"),
        ]


class TestAsyncioFeatures:
    """timeout, wait_for, Queue, executors, streams, subprocesses, eager tasks."""

    def test_timeout_in_root(self) -> None:
        """asyncio.timeout cancels the wait: a resume with CancelledError, then the next wait where it is."""

        async def main() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.005):
                    await asyncio.sleep(1)  # timed-out
            await asyncio.sleep(0.002)  # after-timeout

        with capture_records(**QUIET) as records:
            asyncio.run(main())
        records = joined(records)
        lines = [(r["event"], r["frames"][0]["line"], r.get("exception")) for r in records]
        timed_out, after = _line_of(main, "timed-out"), _line_of(main, "after-timeout")
        assert lines == [
            ("suspend", timed_out, None),
            ("resume", timed_out, "CancelledError"),
            ("suspend", after, None),
            ("resume", after, None),
        ]
        assert 4 <= records[1]["waited_ms"] < 900

    def test_wait_for_in_root(self) -> None:
        """wait_for's timeout: the task is resumed by the CancelledError thrown in, at wait_for's chain."""

        async def main() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.sleep(1), 0.005)

        with capture_records(exclude=(), **QUIET) as records:
            asyncio.run(main())
        suspend, resume = _switches(records)
        assert _functions(suspend) == ["main", "wait_for", "sleep"]
        assert suspend["frames"][1]["locals"]["timeout"] == 0.005
        assert suspend["awaiting"]["type"] == "Future"
        assert resume["exception"] == "CancelledError"  # wait_for turns it into TimeoutError
        assert resume["suspend_seq"] == suspend["seq"]

    def test_timeout_retry_in_nested_coroutine(self) -> None:
        """asyncio.timeout one level down, then a retry: the timeout is a resume with CancelledError, the backoff wait a root-only resume."""

        async def fetch_with_retry() -> int:
            attempts = 0
            for _ in range(2):
                attempts += 1
                try:
                    async with asyncio.timeout(0.005):
                        await asyncio.sleep(1)  # slow-call
                except TimeoutError:
                    await asyncio.sleep(0.002)  # backoff
            return attempts

        async def main() -> int:
            return await fetch_with_retry()

        with capture_records(**QUIET) as records:
            assert asyncio.run(main()) == 2
        records = joined(records)
        got = [
            (r["event"], r["frames"][-1]["line"], len(r["frames"]), r.get("exception"))
            for r in records
        ]
        slow = _line_of(fetch_with_retry, "slow-call")
        root = _line_of(main, "return await fetch_with_retry()")
        one_attempt = [
            ("suspend", slow, 2, None),
            ("resume", slow, 2, "CancelledError"),  # the timeout, seen where it lands
            ("resume", root, 1, None),  # after the backoff wait, which was not seen
        ]
        assert got == one_attempt * 2
        resumes = [r for r in records if r["event"] == "resume"]
        assert [r["waited_ms"] is None for r in resumes] == [False, True] * 2
        assert records[1]["frames"][1]["locals"]["attempts"] == 1

    def test_queue_producer_consumer(self) -> None:
        """A consumer parked in Queue.get waits on a Future; its locals show the items so far."""

        async def producer(queue: asyncio.Queue[int | None]) -> None:
            for item in range(3):
                await asyncio.sleep(0.002)
                await queue.put(item)
            await queue.put(None)

        async def consumer(queue: asyncio.Queue[int | None]) -> list[int]:
            got: list[int] = []
            while (item := await queue.get()) is not None:  # queue-get
                got.append(item)
            return got

        async def main() -> list[int]:
            queue: asyncio.Queue[int | None] = asyncio.Queue()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(producer(queue), name="producer")
                consumed = tg.create_task(consumer(queue), name="consumer")
            return consumed.result()

        with capture_records(exclude=(), **QUIET) as records:
            assert asyncio.run(main()) == [0, 1, 2]
        # The last get() finds None already queued (put right after item 2): no wait.
        waits = [r for r in _switches(records, "consumer") if r["event"] == "suspend"]
        assert len(waits) == 3
        for i, r in enumerate(waits):
            assert _functions(r) == ["consumer", "get"]
            assert r["frames"][1]["function"] == "Queue.get"
            assert r["frames"][0]["line"] == _line_of(consumer, "queue-get")
            assert r["frames"][0]["locals"]["got"] == list(range(i))
            assert r["awaiting"]["type"] == "Future"
        assert _alternate(_switches(records))

    def test_run_in_executor_and_to_thread(self) -> None:
        """The awaiting task waits on the asyncio Future chained to the executor's future, as long as the call runs."""

        async def main() -> int:
            loop = asyncio.get_running_loop()
            first = await loop.run_in_executor(None, _blocking_sum, [1, 2])  # executor-await
            second = await asyncio.to_thread(_blocking_sum, [3])  # to-thread-await
            return first + second

        with capture_records(exclude=(), **QUIET) as records:
            assert asyncio.run(main()) == 6
        own = [r for r in _switches(records) if r["frames"][0]["function"].endswith("main")]
        assert [r["event"] for r in own] == ["suspend", "resume"] * 2
        executor, to_thread = own[0], own[2]
        assert _functions(executor) == ["main"]
        assert executor["frames"][0]["line"] == _line_of(main, "executor-await")
        assert _functions(to_thread) == ["main", "to_thread"]
        assert to_thread["frames"][1]["locals"]["func"].startswith("<function")
        for r in (executor, to_thread):
            assert r["awaiting"]["type"] == "Future"
            # asyncio.wrap_future's callback: the Future mirrors a concurrent.futures.Future.
            assert "_chain_future" in r["awaiting"]["repr"]
            assert r["frames"][-1]["awaits"] == {"type": "Future", "name": None}
        assert own[1]["waited_ms"] >= 15
        assert own[3]["waited_ms"] >= 15

    def test_streams(self) -> None:
        """A TCP client parked in readline shows StreamReader's chain; the server handler task has its locals."""

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served = 0
            while line := await reader.readline():  # server-readline
                served += 1
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        async def main() -> list[bytes]:
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                replies = []
                for word in (b"abc\n", b"xyz\n"):
                    writer.write(word)
                    replies.append(await reader.readline())  # client-readline
                writer.close()
                await writer.wait_closed()
            return replies

        with capture_records(exclude=(), **QUIET) as records:
            assert asyncio.run(main()) == [b"ABC\n", b"XYZ\n"]
        switches = _switches(records)
        assert _alternate(switches)
        client = [
            r
            for r in switches
            if r["event"] == "suspend"
            and r["frames"][0]["line"] == _line_of(main, "client-readline")
        ]
        assert [r["frames"][0]["locals"]["word"] for r in client] == ["b'abc\\n'", "b'xyz\\n'"]
        for r in client:
            assert _functions(r)[1:] == ["readline", "readuntil", "_wait_for_data"]
        served = [
            r["frames"][0]["locals"]["served"]
            for r in switches
            if r["event"] == "suspend"
            and r["frames"][0]["function"].endswith("handler")
            and r["frames"][0]["line"] == _line_of(handler, "server-readline")
        ]
        assert served == [0, 1, 2]

    def test_subprocess(self) -> None:
        """create_subprocess_exec and communicate: the awaiting task's records follow the child's life."""

        async def main() -> tuple[bytes, int]:
            proc = await asyncio.create_subprocess_exec(  # spawn
                sys.executable,
                "-c",
                "import sys, time; data = sys.stdin.read(); time.sleep(0.05); sys.stdout.write(data[::-1])",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate(b"olleh")  # communicate
            return out, await proc.wait()

        with capture_records(exclude=(), **QUIET) as records:
            assert asyncio.run(main()) == (b"hello", 0)
        own = [r for r in _switches(records) if r["frames"][0]["function"].endswith("main")]
        assert _alternate(own)
        lines = {r["frames"][0]["line"] for r in own}
        assert lines == {_line_of(main, "spawn"), _line_of(main, "communicate")}
        talking = [
            r
            for r in own
            if r["event"] == "suspend" and r["frames"][0]["line"] == _line_of(main, "communicate")
        ]
        assert talking  # 3.13's communicate() also awaits wait(): a second suspension
        assert _functions(talking[0]) == ["main", "communicate"]
        assert talking[0]["awaiting"]["type"] == "_GatheringFuture"  # stdin, stdout, stderr
        waited = sum(
            r["waited_ms"]
            for r in own
            if r["event"] == "resume" and r["frames"][0]["line"] == _line_of(main, "communicate")
        )
        assert waited >= 40  # the child sleeps 50 ms after reading its input

    def test_eager_tasks_that_complete_eagerly(self, tmp_path: Path) -> None:
        """eager_task_factory with tasks that finish in their first step: no crash, records written (subprocess)."""
        log = tmp_path / "switches.log"
        code = f"""
            import asyncio, coroscope

            async def quick(k):
                return k

            async def main():
                asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
                done_early = asyncio.create_task(quick(1))
                await asyncio.sleep(0)
                return await done_early + await asyncio.create_task(quick(2))

            coroscope.install(output={str(log)!r}, environ={{"COROSCOPE_BLOCKED_MS": "0"}})
            print(asyncio.run(main()))
        """
        result = run_python(code, clean_env())
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == ["3"]
        records = read_records(log)
        assert [r["event"] for r in records if r["event"] in ("suspend", "resume")] == [
            "suspend",
            "resume",
        ]
        assert sum(r["event"] == "task.done" for r in records) == 3

    def test_eager_task_started_from_a_coroutine(self) -> None:
        """A task started eagerly from inside another task is recorded as its own task."""

        async def child() -> None:
            child_local = "eager"
            await asyncio.sleep(0.001)
            del child_local

        async def main() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.Task(child(), loop=loop, eager_start=True, name="eager-direct")

        with capture_records(**QUIET) as records:
            asyncio.run(main())
        eager = _switches(records, "eager-direct")
        assert [r["event"] for r in eager] == ["suspend", "resume"]
        assert eager[0]["frames"][0]["locals"] == {"child_local": "eager"}

    def test_captured_locals_keep_nothing_alive(self) -> None:
        """Capturing locals keeps no reference: a deleted local is freed at once, an exception in one forms no cycle."""

        class Resource:
            pass

        class Failure(Exception):
            pass

        async def main() -> tuple[bool, Any]:
            resource = Resource()
            resource_ref = weakref.ref(resource)
            await asyncio.sleep(0)  # the locals above are captured here
            del resource
            freed = resource_ref() is None
            try:
                raise Failure
            except Failure as exc:
                caught = exc
            await asyncio.sleep(0)  # `caught` (its traceback holds this frame) is captured
            failure_ref = weakref.ref(caught)
            del caught
            return freed, failure_ref

        gc.disable()  # only reference counting may free them
        try:
            with capture_records(**QUIET) as records:
                freed, failure_ref = asyncio.run(main())
                failure_freed = failure_ref() is None
        finally:
            gc.enable()
        assert len(records) == 4
        assert freed
        assert failure_freed

    def test_dataclass_with_int_default_in_locals(self) -> None:
        """A local holding a dataclass with an int default is rendered, and the other locals are kept."""

        @dataclasses.dataclass
        class Settings:
            retries: int = 3

        async def main() -> None:
            name = "visible"
            settings = Settings()
            after = "kept"
            await asyncio.sleep(0)
            del name, settings, after

        with capture_records(**QUIET) as records:
            asyncio.run(main())
        local_values = records[0]["frames"][0]["locals"]
        assert local_values["name"] == "visible"
        assert local_values["after"] == "kept"
        assert local_values["settings"]["retries"] == 3
        assert "[capture error]" not in local_values
