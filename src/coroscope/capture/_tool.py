"""The ``sys.monitoring`` tool id: the only module that calls ``sys.monitoring``.

Life cycle: :meth:`MonitoringTool.start` takes a free tool id, registers the callbacks and
turns the global events on; :meth:`~MonitoringTool.watch` turns the local events on for a
task's root code; :meth:`~MonitoringTool.stop` leaves nothing behind.  ``stop`` is safe to
call twice, from a callback, and in a forked child.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from types import CodeType

__all__ = ["EVENTS", "GLOBAL_EVENTS", "ROOT_EVENTS", "TOOL_IDS", "TOOL_NAME", "MonitoringTool"]

TOOL_NAME = "coroscope"
TOOL_IDS = (3, 4)  # unassigned by CPython (0 debugger, 1 coverage, 2 profiler, 5 optimizer)

_mon = sys.monitoring
EVENTS = _mon.events
#: Always on: finding task roots, exceptions thrown into tasks, and tasks ending by one.
#: (PY_THROW and PY_UNWIND cannot be local events.)
GLOBAL_EVENTS = EVENTS.PY_START | EVENTS.PY_THROW | EVENTS.PY_UNWIND
#: On the code objects of task roots only: the switches, and the task's normal end.
ROOT_EVENTS = EVENTS.PY_YIELD | EVENTS.PY_RESUME | EVENTS.PY_RETURN
_CALLBACK_EVENTS = (
    EVENTS.PY_START,
    EVENTS.PY_YIELD,
    EVENTS.PY_RESUME,
    EVENTS.PY_RETURN,
    EVENTS.PY_THROW,
    EVENTS.PY_UNWIND,
)


class MonitoringTool:
    """Owns one ``sys.monitoring`` tool id while monitoring is on."""

    __slots__ = ("_codes", "_lock", "tool_id")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tool_id: int | None = None
        self._codes: dict[int, CodeType] = {}  # codes with local events on, kept alive

    @property
    def active(self) -> bool:
        """Whether the callbacks are registered and events are on."""
        return self.tool_id is not None

    def start(
        self, callbacks: Mapping[int, Callable[..., object]], events: int = GLOBAL_EVENTS
    ) -> bool:
        """Take a free tool id and turn the global ``events`` on; ``False`` if every id is
        taken."""
        with self._lock:
            if self.tool_id is not None:
                return True
            for tool_id in TOOL_IDS:
                try:
                    _mon.use_tool_id(tool_id, TOOL_NAME)
                except ValueError:
                    continue
                break
            else:
                return False
            self.tool_id = tool_id
            for event, callback in callbacks.items():
                _mon.register_callback(tool_id, event, callback)
            _mon.set_events(tool_id, events)
            return True

    def watch(self, code: CodeType, events: int = ROOT_EVENTS) -> bool:
        """Turn the local ``events`` (by default the root events) on for ``code``;
        ``False`` if monitoring is off."""
        key = id(code)
        if key in self._codes:
            return True
        tool_id = self.tool_id
        if tool_id is None:
            return False
        self._codes[key] = code
        _mon.set_local_events(tool_id, code, events)
        return True

    def watches(self, code: CodeType) -> bool:
        """Whether ``code`` has the root events on."""
        return id(code) in self._codes

    def stop(self) -> None:
        """Turn every event off and free the tool id; safe to call twice."""
        with self._lock:
            tool_id, self.tool_id = self.tool_id, None
            codes, self._codes = list(self._codes.values()), {}
            if tool_id is not None:
                _release(tool_id, codes)

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()


def _release(tool_id: int, codes: list[CodeType]) -> None:
    """Leave nothing behind: events off (global and local), callbacks unregistered,
    disabled locations re-enabled, id freed.

    On 3.12/3.13 ``free_tool_id`` alone does not clear events (CPython gh-111963).
    """
    _mon.set_events(tool_id, 0)
    for code in codes:
        _mon.set_local_events(tool_id, code, 0)
    for event in _CALLBACK_EVENTS:
        _mon.register_callback(tool_id, event, None)
    # Locations switched off with DISABLE stay off for this tool id after it is freed: the
    # next tool on the id (or coroscope installed again, deciding differently) would miss
    # their events.  Re-enable them; other tools' disabled locations come back too, once,
    # and are switched off again at their next event.
    _mon.restart_events()
    _mon.free_tool_id(tool_id)
