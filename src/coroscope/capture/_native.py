"""The native core's callbacks, wired to a :class:`~._callbacks.Capture`.

``coroscope.capture._core.Switches`` (``_core.c``) runs the common path of the per-switch
callbacks in C: it finds the task by its root frame, keeps the times in the task state's
``SwitchState`` fields, and answers the ``PY_START`` of an awaited coroutine from the place
cache.  Everything else it hands to the capture's own methods, the pure-Python
implementation, so that both implementations build their records with the same code:

* ``_yielded(code, frame, state, value, now, step)``: a suspend to be logged;
* ``_resumed(frame, state, now, waited)``: a resume that may be logged;
* ``on_start``, ``on_throw``, ``on_unwind``: the events it does not decide itself;
* ``_error(exc)``: an exception raised in any of these (none reaches the host).
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._tool import EVENTS

if TYPE_CHECKING:
    from ._callbacks import Capture

__all__ = ["native_callbacks", "native_switches"]


def native_switches(core: ModuleType, capture: Capture) -> Any:
    """The native callbacks of ``capture`` (its settings are copied: they are fixed)."""
    return core.Switches(
        state_type=capture.tasks.state_type,
        by_frame=capture.by_frame,
        codes=capture.places.codes,
        disable=sys.monitoring.DISABLE,
        unawaited_code=None,
        on_start=capture.on_start,
        yielded=capture._yielded,
        resumed=capture._resumed,
        on_throw=capture.on_throw,
        on_unwind=capture.on_unwind,
        error=capture._error,
        slow_step_ns=capture.slow_step_ns,
        slow_await_ns=capture.slow_await_ns,
        log_all=capture.log_all,
        send=dis.opmap["SEND"],
    )


def native_callbacks(native: Any, capture: Capture) -> dict[int, Callable[..., object]]:
    """The callback of each event: native, but for a task's end (once per task)."""
    return {
        EVENTS.PY_START: native.on_start,
        EVENTS.PY_YIELD: native.on_yield,
        EVENTS.PY_RESUME: native.on_resume,
        EVENTS.PY_THROW: native.on_throw,
        EVENTS.PY_RETURN: capture.on_return,
        EVENTS.PY_UNWIND: native.on_unwind,
    }
