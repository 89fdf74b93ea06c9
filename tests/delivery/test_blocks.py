"""Block structure derived from source, cached per code object."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from coroscope.delivery._blocks import BlockIndex
from coroscope.testing import capture_records
from helpers import shapes


def _line(func: types.FunctionType, marker: str) -> int:
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(lines) if marker in text)


def sample(items: list[int]) -> int:
    total = 0
    for item in items:  # m-for
        with open(__file__) as fh:  # m-with
            total += item  # m-in-with
        try:  # m-try
            total += 1  # m-in-try
        except* ValueError:  # m-except-star
            total -= 1  # m-in-except-star
        else:  # m-else
            total += 2  # m-in-else

        def nested() -> int:
            while True:  # m-nested-while
                return 1

        del fh, nested
    return total  # m-after


class TestBlockIndex:
    """Lines map to the blocks enclosing them, outermost first."""

    def test_lines_of_a_function(self) -> None:
        """Every kind of block nests as written; headers of with do not count as inside."""
        index = BlockIndex()
        code = sample.__code__
        for_ = ("for", _line(sample, "m-for"))
        assert index.blocks_at(code, _line(sample, "m-for")) == (for_,)
        assert index.blocks_at(code, _line(sample, "m-with")) == (for_,)
        assert index.blocks_at(code, _line(sample, "m-in-with")) == (
            for_,
            ("with", _line(sample, "m-with")),
        )
        assert index.blocks_at(code, _line(sample, "m-in-try")) == (
            for_,
            ("try", _line(sample, "m-try")),
        )
        assert index.blocks_at(code, _line(sample, "m-in-except-star")) == (
            for_,
            ("except*", _line(sample, "m-except-star")),
        )
        assert index.blocks_at(code, _line(sample, "m-in-else")) == (
            for_,
            ("try-else", _line(sample, "m-else")),
        )
        assert index.blocks_at(code, _line(sample, "m-after")) == ()

    def test_nested_function_blocks_are_its_own(self) -> None:
        """A nested function's lines are not mapped in the outer code object; its own map excludes outer blocks."""
        index = BlockIndex()
        line = _line(sample, "m-nested-while")
        nested_code = next(c for c in sample.__code__.co_consts if isinstance(c, types.CodeType))
        assert index.blocks_at(nested_code, line) == (("while", line),)

    def test_cached_per_code_object(self) -> None:
        """The map is built once per code object."""
        index = BlockIndex()
        index.blocks_at(sample.__code__, 1)
        first = index._by_code[sample.__code__]
        index.blocks_at(sample.__code__, 2)
        assert index._by_code[sample.__code__] is first

    def test_no_source(self) -> None:
        """Code without source (compiled from a string) has no blocks."""
        namespace: dict[str, object] = {}
        exec(
            compile("def f():\n    for i in range(1):\n        pass\n", "<string>", "exec"),
            namespace,
        )
        func = namespace["f"]
        assert isinstance(func, types.FunctionType)
        assert BlockIndex().blocks_at(func.__code__, 3) == ()


class TestNeverOnTheLoop:
    """Block context is derived off the loop thread, from the function's own source."""

    def test_huge_module(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 200,000-line module: no parse on the loop thread, and only the function is parsed."""
        filler = "".join(f"value_{i} = {i}\n" for i in range(200_000))
        source = (
            "import asyncio\n"
            + filler
            + "async def job(n):\n"
            + "    for i in range(n):\n"
            + "        await asyncio.sleep(0)\n"
        )
        path = tmp_path / "huge_module.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("huge_module", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        parsed: list[tuple[int | None, int]] = []
        real_parse = ast.parse

        def spy(text: Any, *args: Any, **kwargs: Any) -> Any:
            parsed.append((threading.get_ident(), len(text)))
            return real_parse(text, *args, **kwargs)

        monkeypatch.setattr(ast, "parse", spy)
        with capture_records() as records:
            asyncio.run(module.job(3))
        suspends = [r for r in records if r["event"] == "suspend"]
        assert shapes(suspends[0]["frames"][0]["blocks"]) == [{"kind": "for", "line": 200_003}]
        assert parsed, "the blocks were derived"
        assert all(thread != threading.main_thread().ident for thread, _ in parsed), parsed
        assert all(size < 1000 for _, size in parsed), parsed
