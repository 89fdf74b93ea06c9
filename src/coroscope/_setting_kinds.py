"""Kinds of setting: how a value is read from text and how a typed argument is checked.

Each kind's ``from_text`` reads an environment variable or ``-s NAME=VALUE``; its
``from_value`` checks a typed argument (``install(sample=0.1)``) without turning it into
text.  Both raise ``ValueError`` saying what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "Choice",
    "Kind",
    "List",
    "Number",
    "Positive",
    "Signal",
    "Switch",
    "Text",
    "await_site_globs",
    "module_globs",
    "parse_switch",
]

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})


def parse_switch(raw: str) -> bool:
    """Parse an on/off value: ``1``/``true``/``on``/``yes`` or ``0``/``false``/``off``/``no``."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("accepted: 1, true, on, yes (enable) or 0, false, off, no (disable)")


class Kind:
    __slots__ = ()
    accepted: str = ""

    def from_text(self, raw: str) -> Any:
        raise NotImplementedError

    def from_value(self, value: object) -> Any:
        if isinstance(value, str):
            return self.from_text(value)
        raise ValueError(f"accepted: {self.accepted}")


class Switch(Kind):
    __slots__ = ()
    accepted = "True/False, or 1, true, on, yes / 0, false, off, no"

    def from_text(self, raw: str) -> bool:
        return parse_switch(raw)

    def from_value(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        return super().from_value(value)  # type: ignore[no-any-return]


class Choice(Kind):
    __slots__ = ("accepted", "choices")

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.accepted = ", ".join(choices)

    def from_text(self, raw: str) -> str:
        value = raw.strip().lower()
        if value not in self.choices:
            raise ValueError(f"accepted: {self.accepted}")
        return value


class Number(Kind):
    """A number within ``[low, high]`` (``integer``: a whole number)."""

    __slots__ = ("accepted", "high", "integer", "low")

    def __init__(
        self, unit: str, *, low: float = 0, high: float = float("inf"), integer: bool = False
    ) -> None:
        self.low = low
        self.high = high
        self.integer = integer
        what = "a whole number" if integer else "a number"
        if high != float("inf"):
            self.accepted = f"{what} from {low:g} to {high:g}"
        elif integer and low == 1 and not unit:
            self.accepted = f"{what} greater than 0"
        else:
            self.accepted = f"{what}{' of ' + unit if unit else ''}, {low:g} or more"

    def _check(self, number: float) -> Any:
        if not self.low <= number <= self.high or number == float("inf"):
            raise ValueError(f"accepted: {self.accepted}")
        return int(number) if self.integer else float(number)

    def from_text(self, raw: str) -> Any:
        try:
            number: float = int(raw.strip()) if self.integer else float(raw.strip())
        except ValueError:
            raise ValueError(f"accepted: {self.accepted}") from None
        return self._check(number)

    def from_value(self, value: object) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"accepted: {self.accepted}")
        if isinstance(value, int) or (isinstance(value, float) and not self.integer):
            return self._check(value)
        return super().from_value(value)


class Positive(Number):
    """A number greater than ``0`` (seconds for network time-outs)."""

    __slots__ = ()

    def __init__(self, unit: str) -> None:
        super().__init__(unit)
        self.accepted = f"a number of {unit} greater than 0"

    def _check(self, number: float) -> Any:
        if not number > 0:
            raise ValueError(f"accepted: {self.accepted}")
        return super()._check(number)


class List(Kind):
    """Comma-separated text, or any iterable of strings, to a tuple."""

    __slots__ = ("accepted", "parse")

    def __init__(self, parse: Any, accepted: str) -> None:
        self.parse = parse
        self.accepted = accepted

    def from_text(self, raw: str) -> tuple[str, ...]:
        return tuple(self.parse(raw))

    def from_value(self, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            return self.from_text(value)
        if isinstance(value, Iterable):
            items = list(value)
            if all(isinstance(item, str) for item in items):
                return self.from_text(",".join(items))
        raise ValueError(f"accepted: {self.accepted}")


class Text(Kind):
    __slots__ = ("check",)
    accepted = "text"

    def __init__(self, check: Any = None) -> None:
        self.check = check

    def from_text(self, raw: str) -> str:
        value = raw.strip()
        if self.check is not None:
            self.check(value)
        return value


class Signal(Kind):
    __slots__ = ()
    accepted = "USR1, USR2 or off"

    def from_text(self, raw: str) -> str:
        value = raw.strip().upper().removeprefix("SIG")
        if value in ("OFF", "0", "NO", "FALSE", ""):
            return "off"
        if value not in ("USR1", "USR2"):
            raise ValueError(f"accepted: {self.accepted}")
        return value


def module_globs(raw: str) -> tuple[str, ...]:
    globs = tuple(part.strip() for part in raw.split(",") if part.strip())
    for glob in globs:
        if any(c.isspace() for c in glob):
            raise ValueError("accepted: comma-separated module globs, e.g. asyncio.*,aiohttp")
    return globs


def await_site_globs(raw: str) -> tuple[str, ...]:
    """Comma-separated globs of await sites (``module.function`` or ``file:line``)."""
    globs = tuple(part.strip() for part in raw.split(",") if part.strip())
    for glob in globs:
        if any(c.isspace() for c in glob):
            raise ValueError(
                "accepted: comma-separated await-site globs, e.g. myapp.poll*,*/worker.py:*"
            )
    return globs
