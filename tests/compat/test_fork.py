"""fork(): each child gets its own writer and connection, keeps none of the parent's
buffered records, writes its own pid, and coroscope causes no multi-threaded-fork
warning: its threads are paused across the fork.

Python reports a fork of a multi-threaded process with a DeprecationWarning that an
error filter cannot turn into an exception (the child already exists), so the tests run
the program with ``-W always::DeprecationWarning`` and look for it on stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from aggregators import LineCollector, check_accounting
from helpers import clean_env, requires_startup_files, run_python


@pytest.fixture
def collector() -> Iterator[LineCollector]:
    """A TCP JSON-lines aggregator remembering which connection carried each line."""
    server = LineCollector().start()
    try:
        yield server
    finally:
        server.stop()


def _by_pid(collector: LineCollector) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for record in collector.records():
        out.setdefault(record["pid"], []).append(record)
    return out


def _one_pid_per_connection(collector: LineCollector) -> None:
    for lines in collector.connections:
        pids = {orjson.loads(line)["pid"] for line in lines}
        assert len(pids) <= 1, f"a connection carried records of several processes: {pids}"


_PREFORK = """
import asyncio, os, sys

async def work(n):
    for _ in range(n):
        await asyncio.sleep(0)

children = []
for _ in range(2):
    pid = os.fork()  # before any record: coroscope has no thread yet
    if pid == 0:
        asyncio.run(work(50))
        sys.exit(0)  # atexit flushes the child's records
    children.append(pid)
asyncio.run(work(30))
for pid in children:
    assert os.waitpid(pid, 0)[1] == 0
print(os.getpid(), *children)
"""


class TestPreFork:
    """A pre-forking server: fork before the first record."""

    @requires_startup_files
    def test_children_write_their_own_records(self, collector: LineCollector) -> None:
        """Parent and two children: no warning, each process's records complete and alone on
        its own connection, each carrying its own pid and its own seq from 0."""
        env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{collector.port}")
        result = run_python(_PREFORK, env, flags=("-W", "always::DeprecationWarning"))
        assert result.returncode == 0, result.stderr
        assert "multi-threaded" not in result.stderr
        parent, *children = map(int, result.stdout.split())
        collector.wait_for(2 * (30 + 50 + 50))
        by_pid = _by_pid(collector)
        assert set(by_pid) == {parent, *children}
        for pid, records in by_pid.items():
            figures = check_accounting(records)
            assert figures["missing"] == 0
            assert min(r["seq"] for r in records) == 0
            assert len(records) >= 2 * (30 if pid == parent else 50)
        _one_pid_per_connection(collector)

    @requires_startup_files
    def test_fork_after_records_does_not_warn(self, collector: LineCollector) -> None:
        """With records written (the writer busy), fork() sees no coroscope thread; a thread
        of the program's own (the control) makes it warn, so the check is live."""
        code = """
            import asyncio, os, sys, threading, time
            async def main():
                for _ in range(200):
                    await asyncio.sleep(0)
            asyncio.run(main())
            if sys.argv[1] == "control":
                threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            asyncio.run(main())  # the parent goes on writing after the fork
        """
        env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{collector.port}")
        flags = ("-W", "always::DeprecationWarning")
        result = run_python(code, env, "coroscope only", flags=flags)
        assert result.returncode == 0, result.stderr
        assert "multi-threaded" not in result.stderr
        control = run_python(code, env, "control", flags=flags)
        assert control.returncode == 0, control.stderr
        assert "multi-threaded" in control.stderr
        collector.wait_for(2 * 2 * 400)


_FORK_WITH_BUFFERED_RECORDS = """
import asyncio, os, sys, threading, time, warnings
import coroscope
from coroscope import _api as _install

coroscope.install(output=sys.argv[1], environ={})
sink = _install._session.writer.sink
gate = threading.Event()
calls = 0
real = type(sink).write_batch

def held(records, levels=()):
    global calls
    calls += 1
    if calls > 1:  # the first batch goes out (a connection is open), then the writer waits
        gate.wait()
    return real(sink, records, levels)

sink.write_batch = held

async def work(n):
    for _ in range(n):
        await asyncio.sleep(0)

asyncio.run(work(5))
while calls < 1:
    time.sleep(0.01)
asyncio.run(work(100))
while calls < 2:  # the writer thread now waits inside the sink with those records
    time.sleep(0.01)
asyncio.run(work(200))  # these stay in the parent's buffer at the fork
assert len(_install._session.writer.buffer) >= 400
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # the parent has a writer thread
    pid = os.fork()
if pid == 0:
    del sink.write_batch  # the child inherited the hold; it must not be blocked by it
    asyncio.run(work(10))
    sys.exit(0)
gate.set()
assert os.waitpid(pid, 0)[1] == 0
print(os.getpid(), pid)
"""


class TestForkWithRecords:
    """fork() while the parent has a connection open and records buffered."""

    def test_child_has_its_own_writer_and_connection(self, collector: LineCollector) -> None:
        """The child writes only its own records (none of the parent's buffer or resend
        window), over its own connection; the parent's records all arrive too."""
        url = f"tcp://127.0.0.1:{collector.port}"
        result = run_python(_FORK_WITH_BUFFERED_RECORDS, clean_env(), url)
        assert result.returncode == 0, result.stderr
        parent, child = map(int, result.stdout.split())
        collector.wait_for(2 * (5 + 100 + 200 + 10))
        by_pid = _by_pid(collector)
        assert set(by_pid) == {parent, child}
        child_records = by_pid[child]
        figures = check_accounting(child_records)
        assert figures["missing"] == figures["duplicates"] == 0
        assert len(child_records) < 2 * 10 + 10  # the parent's 400 records are not here
        assert check_accounting(by_pid[parent])["missing"] == 0
        assert len(by_pid[parent]) >= 2 * (5 + 100 + 200)
        assert len(collector.connections) >= 2
        _one_pid_per_connection(collector)


_MULTIPROCESSING = """
import asyncio, multiprocessing, os, sys

async def work(n):
    for _ in range(n):
        await asyncio.sleep(0)

def child():
    asyncio.run(work(40))
    os.write(1, f"{os.getpid()}\\n".encode())  # one write: the children share stdout

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=child) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    asyncio.run(work(20))
"""


class TestMultiprocessing:
    """multiprocessing with the fork start method (children end with os._exit)."""

    @requires_startup_files
    def test_fork_context_children(self, collector: LineCollector) -> None:
        """Each child's records all arrive (flushed at its exit although atexit is skipped),
        with its own pid; no multi-threaded-fork warning."""
        env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{collector.port}")
        result = run_python(_MULTIPROCESSING, env, flags=("-W", "always::DeprecationWarning"))
        assert result.returncode == 0, result.stderr
        children = {int(line) for line in result.stdout.split()}
        collector.wait_for(2 * (40 + 40 + 20))
        by_pid = _by_pid(collector)
        assert children <= set(by_pid)
        for pid in children:
            assert check_accounting(by_pid[pid])["missing"] == 0
            assert len(by_pid[pid]) >= 80
        _one_pid_per_connection(collector)
