"""The bounded, lock-free (GIL-atomic) hand-over between capture and the writer thread.

The producer side (``put``) runs inside ``sys.monitoring`` callbacks: a length check and a
``deque.append``, both atomic under the GIL, never blocking.  When the buffer is full the
record is dropped and counted; only that rare path takes a lock, so that drops from several
loop threads are counted exactly.  The writer drains with ``popleft``.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["RecordBuffer"]


class RecordBuffer[T]:
    """A FIFO of at most ``capacity`` records (a few more under thread races)."""

    __slots__ = ("_drop_lock", "_dropped", "_items", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._items: deque[T] = deque()
        self.capacity = capacity
        self._drop_lock = threading.Lock()
        self._dropped = 0

    def put(self, record: T) -> bool:
        """Append ``record``; ``False`` (and counted) if the buffer is full."""
        if len(self._items) < self.capacity:
            self._items.append(record)
            return True
        with self._drop_lock:
            self._dropped += 1
        return False

    def drain(self, limit: int) -> list[T]:
        """Take up to ``limit`` records, oldest first."""
        items = self._items
        out: list[T] = []
        append = out.append
        popleft = items.popleft
        for _ in range(min(limit, len(items))):
            try:
                append(popleft())
            except IndexError:  # emptied concurrently (after fork, or a clear)
                break
        return out

    def take_dropped(self) -> int:
        """Return the number of records dropped since the last call, and reset it."""
        with self._drop_lock:
            dropped, self._dropped = self._dropped, 0
        return dropped

    def clear(self) -> int:
        """Discard everything buffered; return how many records that was."""
        n = len(self._items)
        self._items.clear()
        return n

    def __len__(self) -> int:
        return len(self._items)
