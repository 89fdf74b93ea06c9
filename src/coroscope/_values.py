"""Rendering of captured locals into bounded, redacted JSON values.

Runs on the event loop's thread at capture time (values may change later), so it must be
cheap, bounded and must never run user code it was not allowed to run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_DENY", "LocalsRenderer", "REDACTED"]

REDACTED = "[redacted]"

DEFAULT_DENY: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "auth",
    "credential",
    "cookie",
    "session",
    "privatekey",
)

_SCALARS = (int, float, bool, type(None))


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


class LocalsRenderer:
    """Turn a frame's locals into a dict of JSON values, bounded and redacted."""

    __slots__ = ("_deny", "_max_str", "_denied_names")

    def __init__(self, *, deny: Iterable[str] = DEFAULT_DENY, max_str: int = 200) -> None:
        self._deny = tuple(_normalise(d) for d in deny)
        self._max_str = max_str
        # Names seen before: name -> denied?  Names repeat across switches, so the
        # substring scan runs once per distinct name.
        self._denied_names: dict[str, bool] = {}

    def is_denied(self, name: str) -> bool:
        """Whether a local called ``name`` is redacted."""
        denied = self._denied_names.get(name)
        if denied is None:
            key = _normalise(name)
            denied = any(d in key for d in self._deny)
            if len(self._denied_names) < 65_536:
                self._denied_names[name] = denied
        return denied

    def render_locals(self, f_locals: Mapping[str, object]) -> dict[str, Any]:
        """Render every local of a frame; secrets by name become ``"[redacted]"``."""
        out: dict[str, Any] = {}
        for name, value in f_locals.items():
            out[name] = REDACTED if self.is_denied(name) else self.render_value(value)
        return out

    def render_value(self, value: object) -> Any:
        """Render one value: scalars as themselves, anything else as a bounded string."""
        cls = type(value)
        if cls is str:
            text: str = value  # type: ignore[assignment]
            return text if len(text) <= self._max_str else text[: self._max_str] + "..."
        if cls in _SCALARS:
            if cls is int and value.bit_length() > 64:  # type: ignore[attr-defined]
                return f"<int of {value.bit_length()} bits>"  # type: ignore[attr-defined]
            return value
        return f"<{cls.__qualname__} object at {id(value):#x}>"
