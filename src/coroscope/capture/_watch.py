"""``watch`` mode: no task switch is followed; only what costs nothing per switch.

:class:`WatchCapture` turns on no per-switch event at all.  It keeps:

* ``PY_UNWIND`` (global; it fires only when a frame exits by an exception, never at a
  switch): a task whose root coroutine raises gets a ``task.done`` record, unless the
  exception is a cancellation (ordinary control flow in asyncio);
* ``PY_START`` on three code objects only (local events): ``BaseEventLoop.run_forever``
  and the return of ``asyncio.Runner``'s loop set-up, which tell the watchdog, the stuck-task
  scans and the snapshots which loops exist, and Python's "never awaited" hook.

A loop that is neither an asyncio loop nor started by ``asyncio.Runner``/``asyncio.run``
(uvloop's ``loop.run_forever()`` called directly) is found at its first failing task, or
when ``coroscope.snapshot()`` is called on its thread.
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import CancelledError
from collections.abc import Callable, Iterable
from inspect import CO_COROUTINE
from types import CodeType, FrameType
from typing import Any

from .. import _schema as S
from .._schema import WARNING
from ._callbacks import Capture
from ._chain import local_value
from ._state import task_rooted_at
from ._tool import EVENTS

__all__ = ["WatchCapture"]

_getframe = sys._getframe
_RUN_FOREVER = asyncio.base_events.BaseEventLoop.run_forever.__code__
_RUNNER_INIT = asyncio.runners.Runner._lazy_init.__code__  # type: ignore[attr-defined]
MAX_TRACEBACK = 256


class WatchCapture(Capture):
    """The callbacks of ``watch`` mode; the same life cycle as :class:`Capture`."""

    #: coroscope's id of a task it does not follow (set by the session, shared with the
    #: snapshots so that both name a task alike).
    task_id_of: Callable[[Any], int] = staticmethod(lambda task: 0)

    def callbacks(self) -> dict[int, Callable[..., object]]:
        return {
            EVENTS.PY_START: self.on_start,
            EVENTS.PY_RETURN: self.on_return,
            EVENTS.PY_UNWIND: self.on_unwind,
        }

    def start(self) -> bool:
        if not self.tool.start(self.callbacks(), EVENTS.PY_UNWIND):
            return False
        self.switched_off = False
        self.tool.watch(_RUN_FOREVER, EVENTS.PY_START)
        self.tool.watch(_RUNNER_INIT, EVENTS.PY_RETURN)
        if self._unawaited_code is not None:
            self.tool.watch(self._unawaited_code, EVENTS.PY_START)
        return True

    def adopt(self, tasks: Iterable[object]) -> int:
        """Nothing to adopt: no task is followed (the caller registers their loop)."""
        return 0

    # -- the callbacks --------------------------------------------------------------------

    def on_start(self, code: CodeType, offset: int) -> object:
        """``PY_START`` of a loop's ``run_forever`` or of Python's "never awaited" hook."""
        try:
            frame = _getframe(1)
            if code is self._unawaited_code:
                self._unawaited(frame)
            elif code is _RUN_FOREVER:
                self._loop_seen(local_value(frame, "self"))
        except Exception as exc:
            self._error(exc)
        return None

    def on_return(self, code: CodeType, offset: int, retval: object) -> object:
        """``PY_RETURN`` of ``asyncio.Runner``'s set-up: its loop now exists (any loop
        factory, uvloop's included)."""
        try:
            if code is _RUNNER_INIT:
                runner = local_value(_getframe(1), "self")
                if asyncio.Runner in type(runner).__mro__:
                    self._loop_seen(vars(runner).get("_loop"))
        except Exception as exc:
            self._error(exc)
        return None

    def _loop_seen(self, loop: object) -> None:
        if asyncio.AbstractEventLoop in type(loop).__mro__ and self.on_loop is not None:
            self.on_loop(loop)

    def on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> object:
        """``PY_UNWIND``: a frame exits by an exception; a ``task.done`` if it is a task's
        root and the exception is not a cancellation."""
        if not code.co_flags & CO_COROUTINE or isinstance(exc, (CancelledError, GeneratorExit)):
            return None  # (PY_UNWIND cannot be disabled)
        try:
            frame = _getframe(1)
            found = task_rooted_at(frame)
            if found is None:
                return None
            loop, task, _ = found
            if not self.places.allows(code, frame):
                return None
            if self.on_loop is not None:
                self.on_loop(loop)
            if self.task_done:
                self.emit_event(S.TASK_DONE, WARNING, self._failed(task, exc, frame))
        except Exception as err:
            self._error(err)
        return None

    def _failed(self, task: Any, exc: BaseException, root: FrameType) -> dict[str, Any]:
        """A failed task's ``task.done`` fields: what raised, and where (the innermost frame
        of its traceback).  Its age, switches, run and wait times are not known here."""
        tb = exc.__traceback__
        for _ in range(MAX_TRACEBACK):
            if tb is None or tb.tb_next is None:
                break
            tb = tb.tb_next
        raised_at = None
        if tb is not None:
            code = tb.tb_frame.f_code
            raised_at = {
                S.FUNCTION: code.co_qualname,
                S.FILE: code.co_filename,
                S.LINE: tb.tb_lineno,
            }
        fields = {
            S.TASK: {S.NAME: task.get_name() or "", S.ID: self.task_id_of(task)},
            S.OUTCOME: S.EXCEPTION,
            S.EXCEPTION: type(exc).__qualname__,
            S.RAISED_AT: raised_at,
        }
        context = self.context.fields(task)
        if context is not None:
            fields.update(context)
        return fields
