"""Records with named fields: dataclasses and named tuples as JSON objects; enum members.

A dataclass or named tuple becomes ``{"__type__": "module.Name", field: value, ...}``:
``repr=False`` fields are left out, field names are redacted like dict keys, and a field
is read from the instance ``__dict__`` or its slot, never through a property or
``__getattr__``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from ._budget import BUDGET_KEY, MORE_KEY, Budget
from ._core import ValueRenderer
from ._known import CachedText, ObjectMarker
from ._redact import REDACTED
from ._text import MISSING, TYPE_QUALNAME, int_text, json_size, type_name

__all__ = ["FieldsHandler", "enum_handler"]

#: One field: (name, position in a named tuple or -1, slot descriptor or None).
Field = tuple[str, int, "types.MemberDescriptorType | None"]


class FieldsHandler:
    """Dataclasses and named tuples: a JSON object of fields, names redacted."""

    __slots__ = (
        "cls",
        "cycle",
        "cycle_cost",
        "head_cost",
        "marker",
        "n_fields",
        "r",
        "read_dict",
        "shown",
        "type_text",
    )

    def __init__(
        self,
        r: ValueRenderer,
        cls: type,
        fields: list[Field],
        read_dict: Callable[[Any], Any] | None,
    ) -> None:
        self.r = r
        self.cls = cls
        self.read_dict = read_dict
        tname = type_name(cls)
        names = r.texts
        self.type_text = names.name(tname)
        self.marker = ObjectMarker(r, cls)
        self.cycle = names.name(f"[cycle: {tname}]")
        self.cycle_cost = json_size(self.cycle)[1] + 1
        named = [
            (text, n, r.deny(n), position, slot, json_size(text)[1] + 2)
            for n, position, slot in fields
            for text in [names.name(n)]
        ]
        self.n_fields = len(named)
        self.shown = named[: r.max_items]
        self.head_cost = json_size(self.type_text)[1] + 14  # {"__type__":...,}

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        r = self.r
        if depth >= r.max_depth:
            return self.marker(v, depth, b, path)
        vid = id(v)
        if vid in path:
            return r.charged(self.cycle, self.cycle_cost, b)
        try:
            inst = self.read_dict(v) if self.read_dict is not None else None
        except Exception:
            inst = None
        if type(inst) is not dict:
            inst = None
        if not b.charge(self.head_cost):
            return b.exceed()
        out: dict[str, Any] = {"__type__": self.type_text}
        if not b.worked(self.n_fields):
            out[BUDGET_KEY] = None
            return out
        path.append(vid)
        for text, field, denied, position, slot, cost in self.shown:
            if not b.charge(cost):
                out[BUDGET_KEY] = None
                break
            if denied:
                out[text] = r.plain_text(REDACTED, b)
                continue
            value = self._field(v, inst, field, position, slot)
            if value is MISSING:
                out[text] = r.plain_text("<unset>", b)
            else:
                out[text] = r.render(value, depth + 1, b, path)
            if b.spent():
                break
        else:
            if self.n_fields > r.max_items and b.charge(20):
                out[MORE_KEY] = self.n_fields - r.max_items
        path.pop()
        return out

    def _field(
        self,
        v: Any,
        inst: dict[str, Any] | None,
        field: str,
        position: int,
        slot: types.MemberDescriptorType | None,
    ) -> object:
        if position >= 0:  # named tuple
            if position < tuple.__len__(v):
                return tuple.__getitem__(v, position)
            return MISSING
        value: object = MISSING
        if inst is not None:
            value = dict.get(inst, field, MISSING)
        if value is MISSING and slot is not None:
            try:
                value = slot.__get__(v, self.cls)
            except AttributeError:  # an unset slot
                value = MISSING
        return value


def enum_handler(r: ValueRenderer, cls: type, read_dict: Callable[[Any], Any] | None) -> CachedText:
    """Enum members as ``Color.RED`` (or ``Color(3)``), read from the member's ``__dict__``."""
    tname = TYPE_QUALNAME(cls)
    max_str = r.texts.max_str

    def member_text(v: Any) -> str:
        inst = read_dict(v) if read_dict is not None else None
        name = dict.get(inst, "_name_") if type(inst) is dict else None
        if type(name) is str:
            return f"{tname}.{name}"
        value = dict.get(inst, "_value_") if type(inst) is dict else None
        if type(value) is int:
            return f"{tname}({int_text(value, max_str)})"
        return f"<{tname} member>"

    return CachedText(r, member_text)
