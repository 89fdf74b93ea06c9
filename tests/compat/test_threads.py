"""Several threads, each running its own event loop, are all captured with the right
thread and task on every record."""

from __future__ import annotations

import asyncio
import itertools
import threading

import coroscope
from aggregators import check_accounting
from coroscope.testing import capture_records


class TestLoopsInThreads:
    """Four threads with a loop each, switching at the same time."""

    def test_every_record_has_its_thread_and_task(self) -> None:
        """Each thread's task appears only with its own thread's name and id; none is missing."""
        switches = 300
        start = threading.Barrier(4)
        halfway = threading.Barrier(4)  # every loop is half-way before any goes on

        async def worker(label: int) -> None:
            asyncio.current_task().set_name(f"task-{label}")  # type: ignore[union-attr]
            for n in range(switches):
                if n == switches // 2:
                    halfway.wait(10)
                await asyncio.sleep(0)

        finished = threading.Barrier(5)
        release = threading.Event()

        def run(label: int) -> None:
            start.wait()
            asyncio.run(worker(label))
            finished.wait()
            release.wait()  # a long-lived loop thread, as in a server

        threads = [
            threading.Thread(target=run, args=(label,), name=f"loop-{label}") for label in range(4)
        ]
        with capture_records(buffer_size=100_000) as records:
            for thread in threads:
                thread.start()
            finished.wait()
            assert coroscope.flush(10)
            release.set()
            for thread in threads:
                thread.join()
        assert check_accounting(records)["missing"] == 0
        idents = {}
        for label, thread in enumerate(threads):
            mine = [r for r in records if r.get("task", {}).get("name") == f"task-{label}"]
            switched = [r for r in mine if r["event"] in ("suspend", "resume")]
            assert len(switched) >= 2 * switches - 1
            assert {r["thread"] for r in mine} == {f"loop-{label}"}
            assert {r["thread_id"] for r in mine} == {thread.ident}
            idents[label] = thread.ident
        assert len(set(idents.values())) == 4
        # The loops really ran at the same time: their records interleave.
        order = [r["task"]["name"] for r in sorted(records, key=lambda r: r["seq"]) if "task" in r]
        changes = sum(1 for a, b in itertools.pairwise(order) if a != b)
        assert changes > 4
