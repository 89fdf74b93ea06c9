"""The dispatcher every value goes through, and the rules shared by all handlers.

:class:`ValueRenderer` turns one value into a JSON value within a :class:`Budget`:
plain values (``None``, ``bool``, ``float``, ``int`` up to 63 bits, ``str``) inline, every
other type through the handler its type table gives (:mod:`._types`).  Handlers render
their items by calling back into :meth:`ValueRenderer.render`, with the depth and the
*path* (ids of the containers being rendered, to mark cycles).

Names (locals, dict keys, fields) are classified once and cached: the text shown, its
JSON size, and whether it is deny-listed (its value becomes ``"[redacted]"``) or, for
locals, excluded (left out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

import orjson

from ._budget import BUDGET_MARK, RESERVE, Budget
from ._redact import MIN_SCAN, REDACTED, DenyList, NameFilter, scrub
from ._text import TYPE_QUALNAME, Texts, int_text, json_size

__all__ = [
    "DENIED",
    "EXCLUDED",
    "NOT_PLAIN",
    "OVER",
    "REDACTED_COST",
    "Handler",
    "HandlerTable",
    "ValueRenderer",
]

#: A handler renders a value of its type: ``handler(value, depth, budget, path)``.
Handler = Callable[[Any, int, Budget, list[int]], Any]

#: Flags of a name's code (the code is ``size << 2 | flags``).
DENIED: Final = 1
EXCLUDED: Final = 2
#: JSON bytes of ``"[redacted]",`` beyond the name.
REDACTED_COST: Final = 13
#: What :meth:`ValueRenderer.plain` returns for a value that is not plain ...
NOT_PLAIN: Final = object()
#: ... and for a plain value that does not fit in the budget.
OVER: Final = object()

# Distinct names remembered per cache (locals, keys); the cache starts over when full.
_NAME_CACHE: Final = 4096
_SCALAR_COST: Final = 25  # None, a float or a bool: the longest rendering, plus a separator


class HandlerTable(Protocol):
    """Where the dispatcher finds the handler of a type (see :mod:`._types`)."""

    def handler(self, cls: type) -> Handler:
        """The handler for values of exactly ``cls``."""


class ValueRenderer:
    """Renders values for one set of limits and redaction rules."""

    __slots__ = (
        "deny",
        "exclude",
        "key_codes",
        "local_codes",
        "max_depth",
        "max_items",
        "max_ms",
        "table",
        "texts",
    )

    table: HandlerTable

    def __init__(
        self,
        texts: Texts,
        deny: DenyList,
        exclude: NameFilter,
        *,
        max_items: int,
        max_depth: int,
        max_ms: float,
    ) -> None:
        self.texts = texts
        self.deny = deny
        self.exclude = exclude
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_ms = max_ms
        self.local_codes: dict[str, int] = {}
        self.key_codes: dict[str, int] = {}

    # -- spending the budget on texts -----------------------------------------------------

    def string(self, text: str, b: Budget) -> str:
        """A string value: cut, scrubbed and charged at its exact JSON size."""
        return self.ready(self.texts.value(text), b)

    def ready(self, text: str, b: Budget) -> str:
        """An already cut and scrubbed string, charged at its exact JSON size."""
        text, size = json_size(text)
        return text if b.charge(size + 1) else BUDGET_MARK

    def plain_text(self, text: str, b: Budget) -> str:
        """A bounded ASCII text built here (no quote, backslash or secret in it)."""
        return text if b.charge(len(text) + 3) else BUDGET_MARK

    def charged(self, text: str, cost: int, b: Budget) -> str:
        """A text whose JSON size (plus separator) ``cost`` is known."""
        return text if b.charge(cost) else BUDGET_MARK

    # -- names ----------------------------------------------------------------------------

    def classify_name(self, name: str, local: bool) -> tuple[str, int]:
        """A str name: the text to show and its code (``size << 2 | flags``)."""
        codes = self.local_codes if local else self.key_codes
        code = codes.get(name)
        if code is not None:
            return name, code
        flags = DENIED if self.deny(name) else 0
        if local and self.exclude and self.exclude(name):
            flags |= EXCLUDED
        text = self.texts.name(name)
        code = ((json_size(text)[1] + 2) << 2) | flags
        if text is name:  # only names shown as they are: others may collide, see entry_name
            if len(codes) >= _NAME_CACHE:
                codes.clear()
            codes[name] = code
        return text, code

    def key_text(self, key: object, level: int = 0) -> str:
        """Text for a non-str dict key; never hashes or compares ``key``."""
        cls = type(key)
        max_str = self.texts.max_str
        if cls is int:
            return int_text(key, max_str)  # type: ignore[arg-type]
        if cls is float or cls is bool or key is None:
            return repr(key)
        if cls is str:  # inside a tuple key
            return repr(key[:max_str])  # type: ignore[index]
        if cls is tuple and level < 2:
            items = [self.key_text(item, level + 1) for item in key[:4]]  # type: ignore[index]
            more = ", ..." if len(key) > 4 else ("," if len(key) == 1 else "")  # type: ignore[arg-type]
            return "(" + ", ".join(items) + more + ")"
        return self.describe(key)

    def entry_name(
        self, raw: object, local: bool, out: dict[str, Any], odd: bool
    ) -> tuple[str, int, bool]:
        """The key under which an entry (a local, a dict item) goes into ``out``.

        Returns ``(key, code, odd)``.  ``odd`` becomes true once a name is shown other than
        as it is (cut, scrubbed, not a str): from then on, later names may collide with
        earlier ones and get ``~`` appended until they are unique.
        """
        if type(raw) is str:
            key, code = self.classify_name(raw, local)
            if key is not raw:
                odd = True
            if odd:
                while key in out:
                    key += "~"
            return key, code, odd
        text = self.texts.name(self.key_text(raw))
        code = ((json_size(text)[1] + 2) << 2) | (DENIED if self.deny(text) else 0)
        while text in out:
            text += "~"
        return text, code, True

    def is_denied(self, name: object) -> bool:
        """Whether a value under ``name`` (local, key, field) is redacted."""
        if type(name) is not str:
            return self.deny(self.texts.name(self.key_text(name)))
        return bool(self.classify_name(name, False)[1] & DENIED)

    # -- values ---------------------------------------------------------------------------

    def plain(self, value: Any, extra: int, b: Budget) -> Any:
        """``value`` rendered if it is plain, charging ``extra`` bytes (its name) too.

        Returns :data:`NOT_PLAIN` for any other value, and :data:`OVER` (charging nothing)
        for a plain value that does not fit: the caller marks the budget and stops.
        """
        cls = type(value)
        if cls is int:
            bits = value.bit_length()
            if bits >= 64:
                return NOT_PLAIN
            cost = extra + bits // 3 + 3
        elif cls is str:
            n = len(value)
            if n < MIN_SCAN:
                text = value
            elif n <= self.texts.max_str:
                text = scrub(value)
            else:
                text = self.texts.value(value)
            value, size = json_size(text)
            cost = extra + size + 1
        elif value is None or cls is float or cls is bool:
            cost = extra + _SCALAR_COST
        else:
            return NOT_PLAIN
        if cost > b.left:
            return OVER
        b.left -= cost
        return value

    def render(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        """Render any value as a JSON value (the dispatcher)."""
        if v is None:
            return None if b.charge(5) else BUDGET_MARK
        cls = type(v)
        if cls is str:
            return self.string(v, b)
        if cls is int:
            bits = v.bit_length()
            if bits < 64:
                return v if b.charge(bits // 3 + 3) else BUDGET_MARK
            return self.plain_text(int_text(v, self.texts.max_str), b)
        return self.table.handler(cls)(v, depth, b, path)

    def redacted(self, code: int, b: Budget) -> str | object:
        """``"[redacted]"`` under a name of ``code``, or :data:`OVER`."""
        cost = (code >> 2) + REDACTED_COST
        if cost > b.left:
            return OVER
        b.left -= cost
        return REDACTED

    def describe(self, value: object) -> str:
        """A bounded one-line description of ``value`` (for awaited objects and keys)."""
        b = Budget(self.texts.max_str * 4 + RESERVE * 2, self.max_ms)
        try:
            out = self.render(value, self.max_depth, b, [])
        except Exception as exc:
            return f"<describe failed: {TYPE_QUALNAME(type(exc))}>"
        if type(out) is str:
            return out
        return orjson.dumps(out).decode()
