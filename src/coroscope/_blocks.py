"""Which ``for``/``while``/``try``/``with`` blocks enclose a line of a function.

CPython 3.11+ no longer keeps a block stack in the frame, so the structure is derived from
the function's source: the file is parsed once (``ast``), the function's node is found by
name and first line, and every line of the function is mapped to the tuple of blocks that
enclose it.  That map is built once per code object and cached; at capture time the cost
is two dict lookups.

Block kinds: ``for``, ``async for``, ``while``, ``try``, ``except``, ``except*``,
``try-else``, ``finally``, ``with``, ``async with``.  The header line of a loop belongs to
the loop (its condition or ``__anext__`` runs once per iteration); the header of a ``with``
does not (``__aenter__`` runs before the block is entered).  Without source (built-ins,
``exec`` of strings, a missing file) the result is an empty tuple.
"""

from __future__ import annotations

import ast
import linecache
import threading
from types import CodeType

from ._record import Block

__all__ = ["BlockIndex"]

_NO_BLOCKS: tuple[Block, ...] = ()
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_SKIP = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

LineBlocks = dict[int, tuple[Block, ...]]


class BlockIndex:
    """Cache of per-code-object line -> enclosing blocks maps."""

    __slots__ = ("_by_code", "_lock", "_trees", "max_codes")

    def __init__(self, max_codes: int = 16_384) -> None:
        self._by_code: dict[CodeType, LineBlocks] = {}
        self._trees: dict[str, ast.Module | None] = {}
        self._lock = threading.Lock()
        self.max_codes = max_codes

    def blocks_at(self, code: CodeType, line: int | None) -> tuple[Block, ...]:
        """The blocks enclosing ``line`` in ``code``, outermost first."""
        lines = self._by_code.get(code)
        if lines is None:
            lines = self._index(code)
        if line is None:
            return _NO_BLOCKS
        return lines.get(line, _NO_BLOCKS)

    def clear(self) -> None:
        """Forget everything (parsed files and maps)."""
        with self._lock:
            self._by_code.clear()
            self._trees.clear()

    def _index(self, code: CodeType) -> LineBlocks:
        with self._lock:
            lines = self._by_code.get(code)
            if lines is not None:
                return lines
            try:
                lines = self._build(code)
            except Exception:  # a source we cannot parse is a function without blocks
                lines = {}
            if len(self._by_code) >= self.max_codes:
                self._by_code.clear()
            self._by_code[code] = lines
            return lines

    def _tree(self, filename: str) -> ast.Module | None:
        if filename in self._trees:
            return self._trees[filename]
        tree: ast.Module | None = None
        source_lines = linecache.getlines(filename)
        if source_lines:
            try:
                tree = ast.parse("".join(source_lines), filename)
            except (SyntaxError, ValueError):
                tree = None
        if len(self._trees) >= 256:
            self._trees.clear()
        self._trees[filename] = tree
        return tree

    def _build(self, code: CodeType) -> LineBlocks:
        tree = self._tree(code.co_filename)
        if tree is None:
            return {}
        node = _find_function(tree, code.co_name, code.co_firstlineno)
        if node is None:
            return {}
        source_lines = linecache.getlines(code.co_filename)
        out: LineBlocks = {}
        _visit(node.body, (), out, source_lines)
        return out


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


def _keyword_line(source_lines: list[str], before: int, keyword: str, fallback: int) -> int:
    """The line of a bare keyword (``finally:``, ``else:``) just above line ``before``."""
    line = before - 1
    while line >= 1 and line > fallback:
        text = source_lines[line - 1].strip() if line <= len(source_lines) else ""
        if text.startswith(keyword):
            return line
        line -= 1
    return fallback


def _visit(
    stmts: list[ast.stmt],
    stack: tuple[Block, ...],
    out: LineBlocks,
    source_lines: list[str],
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
