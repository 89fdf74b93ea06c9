"""Diagnostics: answers about the whole program, off the per-switch path.

* :mod:`._loops` -- the registry of loops coroscope has seen, and their threads;
* :mod:`._watchdog` -- a daemon thread that finds blocked loops while they are blocked and
  times the stuck-task reports;
* :mod:`._snapshots` -- stuck-task reports and snapshots, run on each loop's own thread;
* :mod:`._unawaited` -- ``coroutine.never_awaited`` records.
"""

from __future__ import annotations

from ._loops import LoopRegistry, WatchedLoop
from ._snapshots import Inspector
from ._unawaited import NeverAwaited
from ._watchdog import Watchdog

__all__ = ["Inspector", "LoopRegistry", "NeverAwaited", "WatchedLoop", "Watchdog"]
