"""Names of the threads that run tasks, for records rendered after a thread has ended.

Records carry only a thread's id; the writer looks its name up when it renders them, when
a short-lived thread may be gone.  A thread is noted here when one of its loops is first
seen (off the per-switch path), and the writer also learns the names of live threads once
per batch.
"""

from __future__ import annotations

import threading

__all__ = ["ThreadNames", "note_thread_name"]

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
