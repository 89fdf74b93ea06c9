"""Who holds which lock, who waits for which, and deadlocks: read from suspended tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import coroscope
from coroscope.testing import capture_records


def _events(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == name]


async def _take(first: asyncio.Lock, second: asyncio.Lock) -> None:
    async with first:
        await asyncio.sleep(0.02)
        async with second:  # blocks-here
            pass


async def _deadlock(n: int, seconds: float, snapshot: bool = False) -> None:
    locks = [asyncio.Lock() for _ in range(n)]
    tasks = [
        asyncio.create_task(_take(locks[i], locks[(i + 1) % n]), name=f"t{i}") for i in range(n)
    ]
    await asyncio.sleep(seconds)
    if snapshot:
        coroscope.snapshot()
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class TestDeadlocks:
    def test_two_tasks(self) -> None:
        """A holds L0 and waits for L1, B holds L1 and waits for L0: one deadlock record."""
        with capture_records(stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(_deadlock(2, 0.7))
        (deadlock,) = _events(records, "deadlock")
        assert deadlock["level"] == "warning"
        members = deadlock["tasks"]
        assert sorted(m["task"]["name"] for m in members) == ["t0", "t1"]
        ids = {lock["id"] for lock in deadlock["locks"]}
        assert len(ids) == 2 and all(lock["type"] == "Lock" for lock in deadlock["locks"])
        for m in members:
            assert m["waits_for"]["id"] in ids
            assert [h["id"] for h in m["holds"]] != [m["waits_for"]["id"]]
            assert len(m["holds"]) == 1 and m["holds"][0]["id"] in ids
            assert m["frames"][0]["function"] == "_take"
            assert m["waiting_s"] > 0
        # Each waits for what the other holds.
        by_name = {m["task"]["name"]: m for m in members}
        assert by_name["t0"]["waits_for"]["id"] == by_name["t1"]["holds"][0]["id"]
        assert by_name["t1"]["waits_for"]["id"] == by_name["t0"]["holds"][0]["id"]
        assert 0 < deadlock["stood_s"] <= min(m["waiting_s"] for m in members)
        assert "locked" in deadlock["locks"][0]["state"]

    def test_three_tasks_and_a_snapshot(self) -> None:
        """A three-task cycle; a snapshot reports it too, with its snapshot id."""
        with capture_records(stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(_deadlock(3, 0.7, snapshot=True))
        found = _events(records, "deadlock")
        assert len(found) == 2, found  # once by the scans, once by the snapshot
        assert "snapshot_id" in found[1] and "snapshot_id" not in found[0]
        for deadlock in found:
            assert sorted(m["task"]["name"] for m in deadlock["tasks"]) == ["t0", "t1", "t2"]
            assert len({lock["id"] for lock in deadlock["locks"]}) == 3
        snaps = {r["task"]["name"]: r for r in _events(records, "snapshot")}
        assert snaps["t0"]["waits_for"]["id"] == snaps["t1"]["holds"][0]["id"]

    def test_no_deadlock_without_a_cycle(self) -> None:
        """A task waiting for a lock held by a sleeping task is not a deadlock."""

        async def holder(lock: asyncio.Lock) -> None:
            async with lock:
                await asyncio.sleep(0.6)

        async def waiter(lock: asyncio.Lock) -> None:
            await asyncio.sleep(0.01)
            async with lock:
                pass

        async def main() -> None:
            lock = asyncio.Lock()
            await asyncio.gather(holder(lock), waiter(lock))

        with capture_records(stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        assert _events(records, "deadlock") == []


class TestHoldsAndWaits:
    def test_semaphore_state_in_stuck_report(self) -> None:
        """A task blocked in `async with sem:` shows the semaphore and its state."""

        async def holder(sem: asyncio.Semaphore, fut: asyncio.Future[None]) -> None:
            async with sem:
                await fut

        async def blocked(sem: asyncio.Semaphore) -> None:
            async with sem:
                pass

        async def main() -> None:
            sem = asyncio.Semaphore(1)
            fut = asyncio.get_running_loop().create_future()
            tasks = [
                asyncio.create_task(holder(sem, fut), name="holder"),
                asyncio.create_task(blocked(sem), name="blocked"),
            ]
            await asyncio.sleep(0.6)
            fut.set_result(None)
            await asyncio.gather(*tasks)

        with capture_records(stuck_s=0.2, blocked_ms=0) as records:
            asyncio.run(main())
        stuck = {r["task"]["name"]: r for r in _events(records, "task.stuck")}
        assert stuck["blocked"]["waits_for"]["type"] == "Semaphore"
        assert stuck["blocked"]["waits_for"]["state"] == "<Semaphore value=0 waiters=1>"
        assert stuck["blocked"]["holds"] == []  # being entered is not holding
        assert stuck["holder"]["waits_for"] is None
        assert [h["id"] for h in stuck["holder"]["holds"]] == [stuck["blocked"]["waits_for"]["id"]]

    def test_condition_wait_releases(self) -> None:
        """Inside `async with cond: await cond.wait()` the task does not hold the lock."""

        async def waiter(cond: asyncio.Condition, fut: asyncio.Future[None]) -> None:
            async with cond:
                await cond.wait()
            await fut

        async def main() -> None:
            cond = asyncio.Condition()
            fut = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(waiter(cond, fut), name="waiter")
            await asyncio.sleep(0.01)
            coroscope.snapshot()
            await asyncio.sleep(0)
            async with cond:
                cond.notify_all()
            await asyncio.sleep(0.01)
            coroscope.snapshot()
            await asyncio.sleep(0)
            fut.set_result(None)
            await task

        with capture_records(blocked_ms=0, stuck_s=0) as records:
            asyncio.run(main())
        snaps = [r for r in _events(records, "snapshot") if r["task"]["name"] == "waiter"]
        assert [s["holds"] for s in snaps] == [[], []]
        assert snaps[0]["idle"] == "condition"

    def test_nested_holds_outermost_first(self) -> None:
        async def nested(a: asyncio.Lock, b: asyncio.Semaphore, fut: asyncio.Future[None]) -> None:
            async with a:
                for _ in range(1):
                    try:
                        async with b:
                            await fut
                    finally:
                        pass

        async def main() -> None:
            a, b = asyncio.Lock(), asyncio.Semaphore(2)
            fut = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(nested(a, b, fut), name="nested")
            await asyncio.sleep(0.01)
            coroscope.snapshot()
            await asyncio.sleep(0)
            fut.set_result(None)
            await task

        with capture_records(blocked_ms=0, stuck_s=0) as records:
            asyncio.run(main())
        (snap,) = [r for r in _events(records, "snapshot") if r["task"]["name"] == "nested"]
        assert [h["type"] for h in snap["holds"]] == ["Lock", "Semaphore"]
        assert snap["holds"][1]["state"] == "<Semaphore value=1 waiters=0>"


def test_many_tasks_are_scanned_in_slices() -> None:
    """With more tasks than one slice, the scan still reaches them all: the last task is
    reported stuck and a deadlock among late tasks is found."""
    from coroscope.diagnostics._snapshots import SCAN_SLICE

    async def idle(fut: asyncio.Future[None]) -> None:
        await fut

    async def main() -> None:
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in range(2 * SCAN_SLICE + 10)]
        tasks = [asyncio.create_task(idle(f), name=f"idle-{i}") for i, f in enumerate(futs)]
        await _deadlock(2, 0.7)
        for f in futs:
            f.set_result(None)
        await asyncio.gather(*tasks)

    with capture_records(stuck_s=0.2, blocked_ms=0) as records:
        asyncio.run(main())
    stuck = {r["task"]["name"] for r in _events(records, "task.stuck")}
    assert f"idle-{2 * SCAN_SLICE + 9}" in stuck and "idle-0" in stuck
    (deadlock,) = _events(records, "deadlock")
    assert sorted(m["task"]["name"] for m in deadlock["tasks"]) == ["t0", "t1"]
