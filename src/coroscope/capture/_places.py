"""Places: where a frame stands, interned once per code object and instruction offset.

A place is the tuple ``(code, lasti, line)`` (see :mod:`coroscope._record`).  The capture
makes one per distinct place and shares it between all records of that place, so that the
writer renders each place (its name, file, line and enclosing blocks) once.

The same cache remembers, per code object, whether its module is captured at all
(``COROSCOPE_INCLUDE`` / ``COROSCOPE_EXCLUDE``): a left-out code object has no places.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from types import CodeType, FrameType

from .._record import Place

__all__ = ["MAX_CODES", "ModuleFilter", "Places", "line_at"]

#: Code objects remembered; the cache starts over when it is full.
MAX_CODES = 65_536


def line_at(code: CodeType, lasti: int) -> int:
    """The source line of the instruction at ``lasti`` (-1 if it has none)."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line if line is not None else -1
    return -1


class ModuleFilter:
    """Decides, from a module's name, whether its frames and tasks are captured.

    ``include`` (if not empty) lists the modules captured; ``exclude`` those left out even
    if included.  Both are ``fnmatch`` globs on dotted module names (``asyncio.*``).
    """

    __slots__ = ("_exclude", "_include")

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self._include = include
        self._exclude = exclude

    def allows(self, module: str) -> bool:
        """Whether code from ``module`` is captured."""
        if self._include and not any(fnmatchcase(module, g) for g in self._include):
            return False
        return not any(fnmatchcase(module, g) for g in self._exclude)


# Per code object: the code itself (which keeps its id from being reused while cached)
# and its places by instruction offset, or None if the code's module is left out.
_CodeEntry = tuple[CodeType, "dict[int, Place] | None"]


class Places:
    """The place cache, and the per-code decision whether a code object is captured."""

    __slots__ = ("_filter", "codes")

    def __init__(self, module_filter: ModuleFilter) -> None:
        self._filter = module_filter
        #: By ``id(code)``: the code and its places, or ``None`` if its module is left out.
        #: (The native core reads it to answer a coroutine's ``PY_START`` without a call.)
        self.codes: dict[int, _CodeEntry] = {}

    def _entry(self, code: CodeType, frame: FrameType) -> _CodeEntry:
        entry = self.codes.get(id(code))
        if entry is not None:
            return entry
        module = frame.f_globals.get("__name__")
        allowed = self._filter.allows(module if type(module) is str else "")
        entry = (code, {} if allowed else None)
        if len(self.codes) >= MAX_CODES:
            self.codes.clear()
        self.codes[id(code)] = entry
        return entry

    def allows(self, code: CodeType, frame: FrameType) -> bool:
        """Whether frames of ``code`` (running in ``frame``) are captured."""
        return self._entry(code, frame)[1] is not None

    def here(self, code: CodeType, frame: FrameType) -> Place | None:
        """The place where ``frame`` (running ``code``) stands now; ``None`` if left out."""
        places = self._entry(code, frame)[1]
        if places is None:
            return None
        lasti = frame.f_lasti
        place = places.get(lasti)
        if place is None:
            line = frame.f_lineno
            place = places[lasti] = (code, lasti, line if line is not None else -1)
        return place

    def at(self, code: CodeType, frame: FrameType, lasti: int) -> Place | None:
        """The place of ``code`` at offset ``lasti`` (where ``frame`` stood earlier)."""
        places = self._entry(code, frame)[1]
        if places is None or lasti < 0:
            return None
        place = places.get(lasti)
        if place is None:
            place = places[lasti] = (code, lasti, line_at(code, lasti))
        return place
