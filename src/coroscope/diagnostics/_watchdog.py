"""The watchdog thread: blocked loops while they are blocked, and the stuck-task timer.

Every ``tick`` the watchdog sends each running loop a *heartbeat* (a callback scheduled with
``call_soon_threadsafe``).  A loop that does not run it within ``COROSCOPE_BLOCKED_MS`` is
blocked: something (a task's step, or a plain callback) holds it.  The watchdog then logs
``loop.blocked`` with the task that is running and the loop thread's Python stack, read
from this thread with ``sys._current_frames()`` while the loop is still blocked; when the
heartbeat finally runs, the loop logs ``loop.unblocked`` with the total.

It also asks each loop, four times per ``COROSCOPE_STUCK_S``, to report its stuck tasks:
the report runs *on the loop's thread*, between tasks, where every task is suspended and
its chain can be read safely.

Cost while idle: one wake-up of this thread and one heartbeat callback per loop per tick
(a tenth of ``COROSCOPE_BLOCKED_MS``, between 5 and 50 ms: 20 per second by default);
nothing at all while no loop is known.  The thread is a
:class:`~coroscope._threads.BackgroundThread` (invisible to the host's thread
bookkeeping), started at install, paused across ``fork()`` and stopped at uninstall.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .. import _schema as S
from .._threads import BackgroundThread
from ._loops import LoopRegistry, WatchedLoop

__all__ = ["Watchdog"]

EmitEvent = Callable[..., None]
MAX_STACK = 64
STUCK_SCANS = 4  # stuck-task scans per COROSCOPE_STUCK_S: a report is at most a quarter late


def _tick_seconds(blocked_ms: float) -> float:
    # A block is timed from the first heartbeat sent after it began, so it is reported
    # once it lasts COROSCOPE_BLOCKED_MS plus at most one tick: a tenth of the threshold,
    # between 5 and 50 ms.
    if blocked_ms <= 0:
        return 0.1
    return min(0.05, max(0.005, blocked_ms / 10_000))


class Watchdog:
    """Watches every registered loop from a daemon thread."""

    def __init__(
        self,
        loops: LoopRegistry,
        emit_event: EmitEvent,
        task_of: Callable[[Any], dict[str, Any] | None],
        *,
        blocked_ms: float,
        stuck_s: float,
        report_stuck: Callable[[asyncio.AbstractEventLoop], None] | None,
    ) -> None:
        self._loops = loops
        self._emit_event = emit_event
        self._task_of = task_of
        self._blocked_ns = int(blocked_ms * 1e6)
        self._stuck_ns = int(stuck_s * 1e9)
        self._report_stuck = report_stuck
        self._tick = _tick_seconds(blocked_ms)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = BackgroundThread("watchdog", self._body, self._wake.set)
        self.errors = 0

    @property
    def enabled(self) -> bool:
        """Whether there is anything to watch for."""
        return self._blocked_ns > 0 or (self._stuck_ns > 0 and self._report_stuck is not None)

    def start(self) -> None:
        """Start (or resume) the thread, if there is anything to watch for."""
        if self.enabled:
            self._thread.start()

    def loop_added(self) -> None:
        """A first loop is known: start watching it."""
        self._wake.set()

    def pause(self, timeout: float) -> bool:
        """Stop the thread for a ``fork()`` (:meth:`start` resumes it)."""
        return self._thread.pause(timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and wait for it (bounded)."""
        self._thread.stop(timeout)

    def reset_after_fork(self) -> None:
        """In a forked child: no thread until started again."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = BackgroundThread("watchdog", self._body, self._wake.set)

    def _body(self, should_stop: Callable[[], bool]) -> None:
        wake = self._wake
        while not should_stop():
            # No loop known: sleep until one is, or until asked to stop.
            wake.wait(self._tick if self._loops.watched() else None)
            wake.clear()
            if should_stop():
                return
            self._tick_once()

    def _tick_once(self) -> None:
        # A function of its own, so that no loop stays referenced by this thread's frame
        # between ticks (a finished loop must be freed at once).
        now = time.perf_counter_ns()
        for loop, watched in self._loops.watched():
            try:
                self._check(loop, watched, now)
            except Exception:
                self.errors += 1

    def _check(self, loop: asyncio.AbstractEventLoop, watched: WatchedLoop, now: int) -> None:
        if not loop.is_running():
            watched.beat_sent_ns = -1
            watched.blocked_reported = False
            return
        if self._blocked_ns > 0:
            sent = watched.beat_sent_ns
            if sent < 0:
                watched.beat_sent_ns = now
                loop.call_soon_threadsafe(self._beat, watched, now)
            elif not watched.blocked_reported and now - sent >= self._blocked_ns:
                self._report_blocked(loop, watched, sent, now)
        if self._stuck_ns > 0 and self._report_stuck is not None and now >= watched.next_stuck_ns:
            if watched.next_stuck_ns:
                loop.call_soon_threadsafe(self._report_stuck, loop)
            watched.next_stuck_ns = now + self._stuck_ns // STUCK_SCANS

    def _report_blocked(
        self, loop: asyncio.AbstractEventLoop, watched: WatchedLoop, sent: int, now: int
    ) -> None:
        frame = sys._current_frames().get(watched.thread_id)
        stack = []
        if frame is not None:
            for summary in traceback.extract_stack(frame, limit=MAX_STACK):
                stack.append(
                    {S.FUNCTION: summary.name, S.FILE: summary.filename, S.LINE: summary.lineno}
                )
        del frame
        task = asyncio.current_task(loop)
        fields = {
            S.BLOCKED_MS: round((now - sent) / 1e6, 3),
            S.TASK: self._task_of(task) if task is not None else None,
            S.STACK: stack,
        }
        with self._lock:
            # The heartbeat may have run meanwhile: then the loop is no longer blocked.
            if watched.beat_sent_ns != sent:
                return
            watched.blocked_reported = True
        self._emit_event(S.LOOP_BLOCKED, S.WARNING, fields, watched.thread_id)

    def _beat(self, watched: WatchedLoop, sent: int) -> None:
        # Runs on the loop's thread.
        try:
            now = time.perf_counter_ns()
            with self._lock:
                if watched.beat_sent_ns != sent:
                    return
                reported = watched.blocked_reported
                watched.beat_sent_ns = -1
                watched.blocked_reported = False
            if reported:
                self._emit_event(
                    S.LOOP_UNBLOCKED, S.WARNING, {S.BLOCKED_MS: round((now - sent) / 1e6, 3)}
                )
        except Exception:
            self.errors += 1
