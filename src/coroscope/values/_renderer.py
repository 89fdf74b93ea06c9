"""The locals renderer: a frame's locals to a dict of bounded, redacted JSON values.

Everything is decided once, when the renderer is built: the limits, the redaction and
exclusion rules and the type table.  :meth:`LocalsRenderer.render_locals` then renders a
frame's locals (a dict or a ``FrameLocalsProxy``, iterated once): excluded names are
dropped, deny-listed ones become ``"[redacted]"``, plain values are inlined, and every
other value goes through its type's handler.  It never raises ``Exception``.

The defaults of every limit are the settings' defaults (:mod:`coroscope._config`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._config import SETTINGS
from ._budget import BUDGET_KEY, RESERVE, Budget
from ._core import EXCLUDED, NOT_PLAIN, OVER, ValueRenderer
from ._redact import DenyList, NameFilter
from ._text import TYPE_QUALNAME, Texts
from ._types import TypeTable

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["REPR_MODES", "LocalsRenderer"]

REPR_MODES = ("safe", "all")
_DEFAULTS = {s.field: s.default for s in SETTINGS}


class LocalsRenderer:
    """Turn a frame's locals into a dict of JSON values, bounded and redacted.

    Arguments left out take the default of their ``COROSCOPE_*`` setting.  To cap a whole
    record, pass the same :meth:`new_budget` to each of its frames (root first).
    """

    __slots__ = ("_max_bytes", "_max_ms", "r", "repr_mode", "table")

    def __init__(
        self,
        *,
        deny: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        max_str: int | None = None,
        max_items: int | None = None,
        max_depth: int | None = None,
        max_bytes: int | None = None,
        max_ms: float | None = None,
        repr_mode: str | None = None,
    ) -> None:
        d = _DEFAULTS
        max_str = d["locals_max_str"] if max_str is None else max_str
        max_items = d["locals_max_items"] if max_items is None else max_items
        max_depth = d["locals_max_depth"] if max_depth is None else max_depth
        max_bytes = d["locals_max_bytes"] if max_bytes is None else max_bytes
        max_ms = d["locals_max_ms"] if max_ms is None else max_ms
        repr_mode = d["locals_repr"] if repr_mode is None else repr_mode
        if repr_mode not in REPR_MODES:
            raise ValueError(f"repr_mode must be one of {', '.join(REPR_MODES)}")
        for label, limit in (("max_str", max_str), ("max_items", max_items),
                             ("max_depth", max_depth)):  # fmt: skip
            if limit <= 0:
                raise ValueError(f"{label} must be greater than 0")
        if not 0 <= max_ms < float("inf"):
            raise ValueError("max_ms must be a number of milliseconds, 0 or more")
        if max_bytes < RESERVE * 2:
            raise ValueError(f"max_bytes must be at least {RESERVE * 2}")
        self.repr_mode = repr_mode
        self._max_bytes = max_bytes
        self._max_ms = max_ms
        self.r = ValueRenderer(
            Texts(max_str),
            DenyList(d["redact"] if deny is None else deny),
            NameFilter(() if exclude is None else exclude),
            max_items=max_items,
            max_depth=max_depth,
            max_ms=max_ms,
        )
        self.table = self.r.table = TypeTable(self.r, repr_all=repr_mode == "all")

    @classmethod
    def from_config(cls, config: Config) -> LocalsRenderer:
        """A renderer with the ``COROSCOPE_*`` locals settings of ``config``."""
        return cls(
            deny=config.redact,
            exclude=config.locals_exclude,
            max_str=config.locals_max_str,
            max_items=config.locals_max_items,
            max_depth=config.locals_max_depth,
            max_bytes=config.locals_max_bytes,
            max_ms=config.locals_max_ms,
            repr_mode=config.locals_repr,
        )

    @property
    def max_str(self) -> int:
        """Characters kept of a string."""
        return self.r.texts.max_str

    @property
    def max_items(self) -> int:
        """Items shown per container."""
        return self.r.max_items

    @property
    def max_depth(self) -> int:
        """Container levels expanded."""
        return self.r.max_depth

    def new_budget(self) -> Budget:
        """A fresh budget for one record, to share between its frames."""
        return Budget(self._max_bytes, self._max_ms)

    def is_denied(self, name: str) -> bool:
        """Whether a value under ``name`` (local, key, field) is redacted."""
        return self.r.is_denied(name)

    def render_value(self, value: object, budget: Budget | None = None) -> Any:
        """Render one value as a JSON value (``orjson.dumps`` always accepts it)."""
        b = budget if budget is not None else self.new_budget()
        try:
            return self.r.render(value, 0, b, [])
        except Exception as exc:  # defensive: a bug here must not reach the program
            return f"<render failed: {TYPE_QUALNAME(type(exc))}>"

    def describe(self, value: object) -> str:
        """A bounded one-line description of ``value`` (for awaited objects and keys)."""
        return self.r.describe(value)

    def render_locals(
        self, f_locals: Mapping[str, object], budget: Budget | None = None
    ) -> dict[str, Any]:
        """Every local of a frame as a JSON value, spending ``budget`` (a fresh one if
        ``None``)."""
        b = self.new_budget() if budget is None else budget
        out: dict[str, Any] = {}
        if b.spent():
            return _exhausted(f_locals, b, out, 0)
        if not b.charge(2):
            return _exhausted(f_locals, b, out, 0)
        r = self.r
        skipped = 0
        over = False
        odd = False  # a name was shown differently: later names may collide
        path: list[int] = []
        try:
            for raw_name, value in f_locals.items():
                name, code, odd = r.entry_name(raw_name, True, out, odd)
                if code & 3:
                    if code & EXCLUDED:
                        skipped += 1
                        continue
                    rendered = r.redacted(code, b)
                else:
                    rendered = r.plain(value, code >> 2, b)
                    if rendered is NOT_PLAIN:
                        if not b.charge(code >> 2):
                            over = True
                            break
                        try:
                            out[name] = r.table.handler(type(value))(value, 0, b, path)
                        except Exception as exc:  # a bug for this value: keep the others
                            path.clear()
                            out[name] = f"<capture error: {TYPE_QUALNAME(type(exc))}>"
                        if b.spent():
                            break
                        continue
                if rendered is OVER:
                    over = True
                    break
                out[name] = rendered
        except Exception as exc:  # a mapping changed under us, or a bug: never raise
            out["[capture error]"] = TYPE_QUALNAME(type(exc))
        if over:
            b.exceed()
        if b.spent():
            return _exhausted(f_locals, b, out, skipped)
        return out


def _exhausted(
    f_locals: Mapping[str, object], b: Budget, out: dict[str, Any], skipped: int
) -> dict[str, Any]:
    """Mark a frame whose budget ran out: why, and how many locals were left out."""
    try:
        left_out = len(f_locals) - len(out) - skipped
    except Exception:
        left_out = -1
    out[BUDGET_KEY] = f"{b.exceeded}, {left_out} locals left out"
    return out
