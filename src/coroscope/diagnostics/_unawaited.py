"""``coroutine.never_awaited``: Python's "coroutine ... was never awaited" as a record.

CPython calls ``warnings._warn_unawaited_coroutine(coro)`` each time a coroutine is
collected without having been awaited.  coroscope replaces nothing: the capture watches
that function's code object start (a ``PY_START`` event, see
:meth:`coroscope.capture.Capture.watch_unawaited`) and hands the coroutine to
:meth:`NeverAwaited.record`.  The warning itself is the interpreter's, untouched: same
text, category, file and line, same filters and once-per-line registry, and the same
traceback when a filter makes it an error.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from .. import _schema as S

__all__ = ["NeverAwaited"]

EmitEvent = Callable[[str, str, dict[str, Any]], None]


class NeverAwaited:
    """Writes a ``coroutine.never_awaited`` record for a coroutine never awaited."""

    __slots__ = ("_emit_event",)

    def __init__(self, emit_event: EmitEvent) -> None:
        self._emit_event = emit_event

    def record(self, coro: object) -> None:
        """Write the record of ``coro`` (called from the capture, on the thread that
        collects the coroutine)."""
        self._emit_event(S.NEVER_AWAITED, S.WARNING, _describe_coroutine(coro))


def _describe_coroutine(coro: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if type(coro) is types.CoroutineType:
        code = coro.cr_code
        fields[S.COROUTINE] = code.co_qualname
        fields[S.FILE] = code.co_filename
        fields[S.LINE] = code.co_firstlineno
        origin = coro.cr_origin
        if origin:
            fields[S.CREATED_AT] = [
                {S.FILE: file, S.LINE: line, S.FUNCTION: function}
                for file, line, function in origin
            ]
    else:
        fields[S.COROUTINE] = type(coro).__qualname__
    return fields
