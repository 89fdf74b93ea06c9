"""Which ``for``/``while``/``try``/``with`` blocks enclose a line of a function.

CPython 3.11+ no longer keeps a block stack in the frame, so the structure is derived from
the function's source: its lines are read (only those of the function: from its first line
to the end of its ``def`` block), parsed with ``ast``, and every line of the function is
mapped to the tuple of blocks that enclose it.  That map is built once per code object and
cached; afterwards a lookup is two dict lookups.

This runs on the writer thread, when a place is rendered for the first time, never in a
capture callback: the event loop never waits on reading or parsing a file.  The work is
bounded by the function, not its module: a function longer than :data:`MAX_LINES` lines
gets no blocks.  Source comes from ``linecache``'s cache if it holds the file (IPython
cells, for one), else from the file on disk; a loader's ``get_source`` (user code) is
never called.

Block kinds: ``for``, ``async for``, ``while``, ``try``, ``except``, ``except*``,
``try-else``, ``finally``, ``with``, ``async with``.  The header line of a loop belongs to
the loop (its condition or ``__anext__`` runs once per iteration); the header of a ``with``
does not (``__aenter__`` runs before the block is entered).  Without source (built-ins,
``exec`` of strings, a missing file) the result is an empty tuple.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import os
import tokenize
from types import CodeType

__all__ = ["MAX_LINES", "BlockIndex", "Block"]

#: The longest function (in lines) whose blocks are derived.
MAX_LINES = 2000
#: Code objects remembered; the cache starts over when it is full.
MAX_CODES = 16_384

Block = tuple[str, int]
_NO_BLOCKS: tuple[Block, ...] = ()
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_SKIP = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

LineBlocks = dict[int, tuple[Block, ...]]


class BlockIndex:
    """Cache of per-code-object line -> enclosing blocks maps (one thread uses it)."""

    __slots__ = ("_by_code",)

    def __init__(self) -> None:
        self._by_code: dict[CodeType, LineBlocks] = {}

    def blocks_at(self, code: CodeType, line: int | None) -> tuple[Block, ...]:
        """The blocks enclosing ``line`` in ``code``, outermost first."""
        lines = self._by_code.get(code)
        if lines is None:
            try:
                lines = _build(code)
            except Exception:  # a source we cannot read or parse has no blocks
                lines = {}
            if len(self._by_code) >= MAX_CODES:
                self._by_code.clear()
            self._by_code[code] = lines
        if line is None:
            return _NO_BLOCKS
        return lines.get(line, _NO_BLOCKS)

    def clear(self) -> None:
        """Forget every map."""
        self._by_code.clear()


def _function_lines(filename: str, first: int) -> list[str] | None:
    """The source lines from line ``first`` of ``filename``, at most ``MAX_LINES + 1``."""
    cached = linecache.cache.get(filename)
    if cached is not None and len(cached) >= 3 and type(cached[2]) is list:
        return list(cached[2][first - 1 : first + MAX_LINES])
    if not os.path.isfile(filename):
        return None
    with open(filename, "rb") as fh:
        encoding, _ = tokenize.detect_encoding(fh.readline)
        fh.seek(0)
        out: list[str] = []
        for number, raw in enumerate(fh, start=1):
            if number >= first:
                out.append(raw.decode(encoding, "replace"))
                if len(out) > MAX_LINES:
                    break
    return out


def _build(code: CodeType) -> LineBlocks:
    first = code.co_firstlineno
    lines = _function_lines(code.co_filename, first)
    if not lines:
        return {}
    block = inspect.getblock(lines)
    if len(block) > MAX_LINES:
        return {}
    source = "".join(block)
    indented = block[0][:1] in (" ", "\t")
    tree = ast.parse("if 1:\n" + source if indented else source)
    ast.increment_lineno(tree, first - 1 - (1 if indented else 0))
    node = _find_function(tree, code.co_name, first)
    if node is None:
        return {}
    out: LineBlocks = {}
    _visit(node.body, (), out, _Lines(block, first))
    return out


class _Lines:
    """The function's source lines, indexed by their line number in the file."""

    __slots__ = ("first", "lines")

    def __init__(self, lines: list[str], first: int) -> None:
        self.lines = lines
        self.first = first

    def text(self, line: int) -> str:
        index = line - self.first
        return self.lines[index].strip() if 0 <= index < len(self.lines) else ""


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    if node.decorator_list:
        return min(node.lineno, *(d.lineno for d in node.decorator_list))
    return node.lineno


def _find_function(
    tree: ast.Module, name: str, first_line: int
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in ast.walk(tree):
        if (
            isinstance(node, _FUNCTION_NODES)
            and node.name == name
            and first_line in (node.lineno, _first_line(node))
        ):
            return node
    return None


def _mark(out: LineBlocks, first: int, last: int, stack: tuple[Block, ...]) -> None:
    for line in range(first, last + 1):
        out[line] = stack


def _keyword_line(source_lines: _Lines, before: int, keyword: str, fallback: int) -> int:
    """The line of a bare keyword (``finally:``, ``else:``) just above line ``before``."""
    line = before - 1
    while line >= 1 and line > fallback:
        text = source_lines.text(line)
        if text.startswith(keyword):
            return line
        line -= 1
    return fallback


def _visit(
    stmts: list[ast.stmt],
    stack: tuple[Block, ...],
    out: LineBlocks,
    source_lines: _Lines,
) -> None:
    for stmt in stmts:
        if isinstance(stmt, _SKIP):
            continue
        end = stmt.end_lineno or stmt.lineno
        _mark(out, stmt.lineno, end, stack)
        if isinstance(stmt, ast.For | ast.AsyncFor):
            kind = "async for" if isinstance(stmt, ast.AsyncFor) else "for"
            inner = (*stack, (kind, stmt.lineno))
            header_end = stmt.body[0].lineno - 1 if stmt.body else stmt.lineno
            _mark(out, stmt.lineno, max(stmt.lineno, header_end), inner)
            _visit(stmt.body, inner, out, source_lines)
            _visit(stmt.orelse, stack, out, source_lines)
        elif isinstance(stmt, ast.While):
            inner = (*stack, ("while", stmt.lineno))
            header_end = stmt.body[0].lineno - 1 if stmt.body else stmt.lineno
            _mark(out, stmt.lineno, max(stmt.lineno, header_end), inner)
            _visit(stmt.body, inner, out, source_lines)
            _visit(stmt.orelse, stack, out, source_lines)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            kind = "async with" if isinstance(stmt, ast.AsyncWith) else "with"
            _visit(stmt.body, (*stack, (kind, stmt.lineno)), out, source_lines)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            _visit(stmt.body, (*stack, ("try", stmt.lineno)), out, source_lines)
            handler_kind = "except*" if isinstance(stmt, ast.TryStar) else "except"
            for handler in stmt.handlers:
                inner = (*stack, (handler_kind, handler.lineno))
                header_end = handler.body[0].lineno - 1 if handler.body else handler.lineno
                _mark(out, handler.lineno, max(handler.lineno, header_end), inner)
                _visit(handler.body, inner, out, source_lines)
            if stmt.orelse:
                line = _keyword_line(source_lines, stmt.orelse[0].lineno + 1, "else", stmt.lineno)
                _visit(stmt.orelse, (*stack, ("try-else", line)), out, source_lines)
            if stmt.finalbody:
                line = _keyword_line(
                    source_lines, stmt.finalbody[0].lineno + 1, "finally", stmt.lineno
                )
                _visit(stmt.finalbody, (*stack, ("finally", line)), out, source_lines)
        elif isinstance(stmt, ast.If):
            _visit(stmt.body, stack, out, source_lines)
            _visit(stmt.orelse, stack, out, source_lines)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                _visit(case.body, stack, out, source_lines)
