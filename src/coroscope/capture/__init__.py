"""Capture: the ``sys.monitoring`` callbacks, on the loop thread, at every task switch.

They decide fast whether a switch is logged and grab the minimum: the task's await chain
(:mod:`._chain`), each frame's place (:mod:`._places`) and locals, and what the task waits
on (:mod:`._awaitables`), as one compact record (:mod:`coroscope._record`) handed to the
buffer.  :mod:`._tool` is the only module that calls ``sys.monitoring``; :mod:`._state`
holds what is kept per task; :mod:`._callbacks` are the callbacks, :mod:`._watch` those
of ``watch`` mode (none per switch), and :mod:`._waits` tells timer and idle waits apart.
"""

from __future__ import annotations

from ._awaitables import describe_awaitable, is_task
from ._callbacks import Capture, Emit
from ._chain import ChainCapture, LocalsSource, local_value
from ._options import CaptureOptions
from ._places import ModuleFilter, Places
from ._state import TaskState, TaskTable
from ._tool import TOOL_IDS, TOOL_NAME
from ._watch import WatchCapture

__all__ = [
    "TOOL_IDS",
    "TOOL_NAME",
    "Capture",
    "CaptureOptions",
    "ChainCapture",
    "Emit",
    "LocalsSource",
    "ModuleFilter",
    "Places",
    "TaskState",
    "TaskTable",
    "WatchCapture",
    "describe_awaitable",
    "is_task",
    "local_value",
]
