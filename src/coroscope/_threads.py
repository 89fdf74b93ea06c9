r"""Threads: coroscope's own background threads, and the names of the threads that run tasks.

Records carry only a thread's id; the writer looks its name up when it renders them, when
a short-lived thread may be gone.  A thread is noted here when one of its loops is first
seen (off the per-switch path), and the writer also learns the names of live threads once
per batch.

coroscope's own threads (the writer, the watchdog) are :class:`BackgroundThread`\ s.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
from collections.abc import Callable

from ._warn import warn

__all__ = ["BackgroundThread", "ThreadNames", "note_thread_name"]

_MAX = 4096
_seen: dict[int, str] = {}


def note_thread_name() -> None:
    """Remember the calling thread's name."""
    if len(_seen) >= _MAX:
        _seen.clear()
    _seen[threading.get_ident()] = threading.current_thread().name


class ThreadNames:
    """Thread id -> name, resolved on the writer thread."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def name(self, ident: int) -> str:
        """The thread's name: live threads by their current name, ended ones as noted."""
        name = self._names.get(ident)
        if name is None:
            thread = threading._active.get(ident)  # type: ignore[attr-defined]
            if thread is None:
                return _seen.get(ident) or f"Thread-{ident}"
            name = str(thread.name)
            if len(self._names) > _MAX:
                self._names.clear()
            self._names[ident] = name
        return name

    def learn_live(self) -> None:
        """Learn the names of every live thread (once per batch)."""
        for ident in list(threading._active):  # type: ignore[attr-defined]
            self.name(ident)

    def forget(self) -> None:
        """Drop cached names (they may have changed)."""
        self._names.clear()


class _Run:
    """One run of a background thread: asked to stop, stopped, finished."""

    __slots__ = ("done", "exited", "native_id", "stop")

    def __init__(self) -> None:
        self.stop = False
        self.exited = False
        self.native_id = -1
        self.done = _thread.allocate_lock()
        self.done.acquire()  # released when the thread's body returns


def _gone(native_id: int, deadline: float) -> bool:
    """Wait until the operating system's thread ``native_id`` has exited (Linux: its
    ``/proc/self/task`` entry is gone, as ``fork()`` counts threads there)."""
    if native_id < 0 or not sys.platform.startswith("linux"):
        return True
    path = f"/proc/self/task/{native_id}"
    while os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0002)
    return True


class BackgroundThread:
    """A daemon thread of coroscope's own, invisible to the host's thread bookkeeping.

    It is started with ``_thread.start_new_thread``: there is no ``threading.Thread``
    object, so it is not in ``threading.enumerate()``, ``threading.active_count()`` or
    ``threading._dangling``, which test runners and leak checkers compare before and after
    each test (CPython's own regrtest among them).  Its code must never call
    ``threading.current_thread()``, which would register a dummy ``Thread`` for it.

    ``body(should_stop)`` loops until ``should_stop()`` is true; ``wake()`` interrupts its
    waits.  :meth:`pause` and :meth:`resume` bracket a ``fork()``: the process then has no
    thread of coroscope's at the fork.  A run that does not stop in time goes on after
    :meth:`resume` (no second thread is started beside it).
    """

    __slots__ = ("_body", "_ctl", "_run", "_wake", "name")

    def __init__(
        self, name: str, body: Callable[[Callable[[], bool]], None], wake: Callable[[], None]
    ) -> None:
        self.name = name
        self._body = body
        self._wake = wake
        self._ctl = _thread.allocate_lock()
        self._run: _Run | None = None

    @property
    def alive(self) -> bool:
        """Whether a run is going on (and not asked to stop)."""
        run = self._run
        return run is not None and not run.stop and not run.exited

    def start(self) -> None:
        """Start the thread, unless it runs (a paused run that did not stop goes on)."""
        with self._ctl:
            run = self._run
            if run is not None and not run.exited:
                run.stop = False
                return
            run = self._run = _Run()
        _thread.start_new_thread(self._main, (run,))

    resume = start

    def pause(self, timeout: float, *, gone: bool = True) -> bool:
        """Ask the run to stop and wait up to ``timeout`` seconds for its body to return
        and (``gone``) its thread to be gone from the operating system too, as a ``fork()``
        needs; ``True`` if it is."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._ctl:
            run = self._run
            if run is None:
                return True
            run.stop = True
        self._wake()
        if not run.done.acquire(timeout=max(timeout, 0.0)):
            return False
        run.done.release()
        return _gone(run.native_id, deadline) if gone else True

    def stop(self, timeout: float) -> bool:
        """Stop for good (until :meth:`start`); ``True`` if the body returned in time."""
        ended = self.pause(timeout, gone=False)
        with self._ctl:
            self._run = None
        return ended

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's run is not there; nothing runs until started."""
        self._ctl = _thread.allocate_lock()
        self._run = None

    def _main(self, run: _Run) -> None:
        def should_stop() -> bool:
            with self._ctl:
                if run.stop:
                    run.exited = True
                return run.stop

        run.native_id = threading.get_native_id()
        try:
            self._body(should_stop)
        except BaseException as exc:  # a bug must not end the thread silently
            warn(f"coroscope: {self.name} thread stopped: {type(exc).__name__}: {exc}")
        finally:
            with self._ctl:
                run.exited = True
            run.done.release()
