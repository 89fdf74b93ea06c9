"""Containers: lists, tuples, sets, deques and views as JSON arrays; dicts as objects.

At most ``max_items`` items (then ``"[+N more]"`` / ``"[more]": N``), at most ``max_depth``
levels (deeper containers become ``"<list len=N>"``); a container met again inside itself
becomes ``"[cycle: list]"``.  Subclasses of these types are read through the base type's
C methods, never through their own (see :mod:`._types`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

from ._budget import BUDGET_KEY, BUDGET_MARK, MORE_KEY, Budget
from ._core import DENIED, NOT_PLAIN, OVER, ValueRenderer
from ._redact import REDACTED
from ._text import TYPE_QUALNAME

__all__ = ["MappingHandler", "SequenceHandler"]

# Bytes of the markers a mapping may add: "[more]":N and "[changed during capture]":null.
_MORE_COST = 20
_CHANGED_COST = 40
_CHANGED_KEY = "[changed during capture]"


class SequenceHandler:
    """A JSON array of the first ``max_items`` items.

    ``direct``: within the cap the value itself is iterated (a list or tuple: its iterator
    copes with changes); otherwise ``head(value)`` takes a snapshot in one C call.
    """

    __slots__ = ("cycle_text", "direct", "head", "length", "name", "pair_check", "r")

    def __init__(
        self,
        r: ValueRenderer,
        name: str,
        length: Callable[[Any], int],
        head: Callable[[Any], Any],
        *,
        direct: bool,
    ) -> None:
        self.r = r
        self.name = name
        self.length = length
        self.head = head
        self.direct = direct
        self.pair_check = name == "tuple"
        self.cycle_text = f"[cycle: {name}]"

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        r = self.r
        max_items = r.max_items
        try:
            n = self.length(v)
            if depth >= r.max_depth:
                return r.plain_text(f"<{self.name} len={n}>", b)
            vid = id(v)
            if vid in path:
                return r.plain_text(self.cycle_text, b)
            items = v if self.direct and n <= max_items else self.head(v)
        except Exception as exc:
            return r.string(f"<{self.name}: {TYPE_QUALNAME(type(exc))} while reading>", b)
        if not b.charge(3):
            return BUDGET_MARK
        out: list[Any] = []
        if not b.worked(min(n, max_items)):
            out.append(BUDGET_MARK)
            return out
        if self.pair_check and n == 2 and type(items[0]) is str:
            # A (name, value) pair: the name decides redaction, like a dict key.
            first: str = items[0]
            if r.classify_name(first, False)[1] & DENIED:
                out.append(r.string(first, b))
                if not b.spent():
                    out.append(r.plain_text(REDACTED, b))
                return out
        pushed = False
        for item in items:
            value = r.plain(item, 0, b)
            if value is NOT_PLAIN:
                if not pushed:
                    path.append(vid)
                    pushed = True
                out.append(r.render(item, depth + 1, b, path))
                if b.spent():
                    break
            elif value is OVER:
                out.append(b.exceed())
                break
            else:
                out.append(value)
        else:
            if n > max_items:
                out.append(r.plain_text(f"[+{n - max_items} more]", b))
        if pushed:
            path.pop()
        return out


class MappingHandler:
    """A JSON object of the first ``max_items`` items, keys as names (redacted by name).

    ``items_of(value)`` is the C items view of the mapping.  ``direct``: within the cap an
    exact dict is iterated as it is (a change by another thread raises ``RuntimeError``,
    reported as ``"[changed during capture]"``); otherwise a snapshot is taken.
    """

    __slots__ = ("cycle_text", "direct", "items_of", "length", "name", "r")

    def __init__(
        self,
        r: ValueRenderer,
        name: str,
        length: Callable[[Any], int],
        items_of: Callable[[Any], Any],
        *,
        direct: bool,
    ) -> None:
        self.r = r
        self.name = name
        self.length = length
        self.items_of = items_of
        self.direct = direct
        self.cycle_text = f"[cycle: {name}]"

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        r = self.r
        max_items = r.max_items
        try:
            n = self.length(v)
            if depth >= r.max_depth:
                return r.plain_text(f"<{self.name} len={n}>", b)
            vid = id(v)
            if vid in path:
                return r.plain_text(self.cycle_text, b)
            if self.direct and n <= max_items:
                items = self.items_of(v)
            else:
                items = list(islice(self.items_of(v), max_items))
        except Exception as exc:
            return r.string(f"<{self.name}: {TYPE_QUALNAME(type(exc))} while reading>", b)
        if not b.charge(3):
            return BUDGET_MARK
        out: dict[str, Any] = {}
        if not b.worked(min(n, max_items)):
            out[BUDGET_KEY] = None
            return out
        pushed = False
        over = False
        odd = False
        try:
            for raw_key, item in items:
                key, code, odd = r.entry_name(raw_key, False, out, odd)
                if code & DENIED:
                    value = r.redacted(code, b)
                else:
                    value = r.plain(item, code >> 2, b)
                    if value is NOT_PLAIN:
                        if not b.charge(code >> 2):
                            over = True
                            break
                        if not pushed:
                            path.append(vid)
                            pushed = True
                        out[key] = r.render(item, depth + 1, b, path)
                        if b.spent():
                            break
                        continue
                if value is OVER:
                    over = True
                    break
                out[key] = value
            else:
                if n > max_items and b.charge(_MORE_COST):
                    out[MORE_KEY] = n - max_items
        except RuntimeError:  # changed by another thread while we iterated it
            if b.left >= _CHANGED_COST:
                b.left -= _CHANGED_COST
                out[_CHANGED_KEY] = None
        if over:
            b.exceed()
            out[BUDGET_KEY] = None
        if pushed:
            path.pop()
        return out
