"""The event loops coroscope has seen, and the thread each runs in.

A loop is registered the first time one of its tasks starts (off the per-switch path), and
forgotten when it is garbage collected.  The watchdog and snapshots use this registry to
reach every loop of the process, whichever thread runs it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable

from .._threads import note_thread_name

__all__ = ["LoopRegistry", "WatchedLoop"]


class WatchedLoop:
    """One registered loop: a weak reference, its thread, and the watchdog's state for it."""

    __slots__ = (
        "__weakref__",
        "beat_sent_ns",
        "blocked_reported",
        "loop_ref",
        "next_stuck_ns",
        "thread_id",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        self.loop_ref = weakref.ref(loop)
        self.thread_id = thread_id
        self.beat_sent_ns = -1  # a heartbeat is on its way since then (-1: none)
        self.blocked_reported = False
        self.next_stuck_ns = 0


class LoopRegistry:
    """Thread-safe set of watched loops, keyed by ``id()`` of the loop."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self._loops: dict[int, WatchedLoop] = {}
        self._lock = threading.Lock()
        self.on_first = on_first
        # The loop registered last, weakly (a finished loop must be freed): a cheap
        # "seen it already" check for the task starts of one loop.
        self._last: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def is_last(self, loop: object) -> bool:
        """Whether ``loop`` is the loop registered last."""
        last = self._last
        return last is not None and last() is loop

    def seen(self, loop: asyncio.AbstractEventLoop) -> None:
        """A task of ``loop`` started on the calling thread: register the loop if it is new
        (a task start of the loop registered last costs one weak reference call)."""
        if not self.is_last(loop):
            self.register(loop)

    def register(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember ``loop`` as running in the calling thread (and the thread's name)."""
        self._last = weakref.ref(loop)
        note_thread_name()
        key = id(loop)
        with self._lock:
            known = self._loops.get(key)
            if known is not None and known.loop_ref() is loop:
                known.thread_id = threading.get_ident()
                return
            first = not self._loops
            self._loops[key] = WatchedLoop(loop, threading.get_ident())
        if first and self.on_first is not None:
            self.on_first()

    def watched(self) -> list[tuple[asyncio.AbstractEventLoop, WatchedLoop]]:
        """The live loops with their state; dead or closed ones are forgotten."""
        out = []
        with self._lock:
            for key, watched in list(self._loops.items()):
                loop = watched.loop_ref()
                if loop is None or loop.is_closed():
                    del self._loops[key]
                    continue
                out.append((loop, watched))
        return out

    def clear(self) -> None:
        """Forget every loop."""
        with self._lock:
            self._loops.clear()
        self._last = None
