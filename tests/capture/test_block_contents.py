"""What each enclosing block holds: the `for` iterator, the `with` manager, the exception."""

from __future__ import annotations

import asyncio
from typing import Any

from coroscope.testing import capture_records


class _Manager:
    def __enter__(self) -> _Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


async def _numbers() -> Any:
    yield 1
    await asyncio.sleep(0)
    yield 2


async def _nested(lock: asyncio.Lock, fut: asyncio.Future[None]) -> None:
    try:
        for _pair in enumerate([10, 20, 30]):
            with _Manager():
                async with lock:
                    async for _n in _numbers():
                        await fut  # nested-await
    except KeyError:
        pass


async def _handling(fut: asyncio.Future[None]) -> None:
    try:
        raise ValueError("order 7 failed")
    except ValueError:
        await fut


async def _local_iterator(fut: asyncio.Future[None]) -> None:
    it = iter([1, 2, 3])
    for _x in it:  # the iterator is also a local: which is which is not certain
        await fut


def _first_suspend(records: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in records if r["event"] == "suspend" and r["task"]["name"] == name)


async def _run(*coros: Any, names: tuple[str, ...]) -> None:
    fut = asyncio.get_running_loop().create_future()
    tasks = [asyncio.create_task(c(fut), name=n) for c, n in zip(coros, names, strict=True)]
    await asyncio.sleep(0.01)
    fut.set_result(None)
    await asyncio.gather(*tasks, return_exceptions=True)


class TestBlockContents:
    def test_nested_with_inside_for_inside_try(self) -> None:
        async def main() -> None:
            lock = asyncio.Lock()

            async def nested(fut: asyncio.Future[None]) -> None:
                await _nested(lock, fut)

            await _run(nested, names=("nested",))

        with capture_records() as records:
            asyncio.run(main())
        frame = _first_suspend(records, "nested")["frames"][-1]
        assert frame["function"] == "_nested"
        blocks = {b["kind"]: b for b in frame["blocks"]}
        assert list(blocks) == ["try", "for", "with", "async with", "async for"]
        assert "holds" not in blocks["try"]
        assert blocks["for"]["holds"] == (
            "<enumerate count=1 of <list_iterator index=1 remaining=2>>"
        )
        assert blocks["with"]["holds"].startswith(f"<{__name__}._Manager object at 0x")
        assert blocks["async with"]["holds"] == "<Lock locked>"
        assert blocks["async for"]["holds"] == "<async_generator _numbers>"

    def test_except_holds_the_exception(self) -> None:
        async def main() -> None:
            await _run(_handling, names=("handling",))

        with capture_records() as records:
            asyncio.run(main())
        (block,) = _first_suspend(records, "handling")["frames"][-1]["blocks"]
        assert block == {
            "kind": "except",
            "line": block["line"],
            "holds": "ValueError('order 7 failed')",
        }

    def test_uncertain_match_leaves_the_block_empty(self) -> None:
        async def main() -> None:
            await _run(_local_iterator, names=("local",))

        with capture_records() as records:
            asyncio.run(main())
        (block,) = _first_suspend(records, "local")["frames"][-1]["blocks"]
        assert block["kind"] == "for" and "holds" not in block

    def test_locals_off_means_no_contents(self) -> None:
        async def main() -> None:
            await _run(_handling, names=("handling",))

        with capture_records(locals="off") as records:
            asyncio.run(main())
        (block,) = _first_suspend(records, "handling")["frames"][-1]["blocks"]
        assert "holds" not in block
