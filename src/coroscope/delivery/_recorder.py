"""``recorder`` mode: every record kept in a bounded in-memory ring, written only when an
incident is triggered.

The capture hands each record to :meth:`Recorder.put` instead of the writer.  The ring
keeps the records of the last ``seconds`` of switches (measured back from the newest switch,
so that a blocked loop's history stays while it is blocked) within ``max_bytes`` (an
estimate of the memory a record holds, see :func:`estimated_bytes`), whichever bound is
reached first; nothing is written until a trigger fires.  A trigger:

* a slow step (a ``suspend`` or ``end`` record at ``warning``) or a slow wait (the capture
  calls :meth:`Recorder.trigger` with ``slow_wait``);
* ``loop.blocked`` (written while the loop is still blocked: the watchdog's thread puts it),
  ``task.stuck``, ``deadlock``, and a ``task.done`` of a task that raised (not cancelled);
* ``coroscope.dump(reason)``, the dump signal, or ``coroscope ctl PATH dump``.

It writes an ``incident`` record (``incident_id``, ``trigger``, ``reason``, ``window_s``,
``records``, ``suppressed``), then every record of the ring not written for an earlier
incident, oldest first, each with the ``incident_id``.  The batch goes to the writer as one
item: the thread that triggers copies references, the writer thread renders.

**Rate limit.**  At most one incident per second and ten per minute.  A trigger beyond that
is counted (``suppressed`` in the next incident) and its record stays in the ring, so the
next incident writes it; if none comes, the session writes a last ``suppressed`` incident
when it closes (at exit).  A storm of triggers therefore writes at most ten windows a
minute, never every switch at full I/O.

Snapshots are written at once: someone asked for them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from .. import _schema as S
from .._record import (
    EVENT,
    EVENT_FIELDS,
    EVENT_NAME,
    FRAMES,
    KIND,
    LEVEL,
    SEQ,
    T_NS,
    EventRecord,
    Record,
    SwitchRecord,
)

__all__ = ["MIN_INTERVAL_S", "PER_MINUTE", "Recorder", "estimated_bytes"]

MIN_INTERVAL_S = 1.0
PER_MINUTE = 10
#: Estimated bytes of a record: its tuple and the shares of what it holds, measured with
#: tracemalloc (``benchmarks/native_memory.py --mode recorder``) and rounded up; places are
#: shared between records, not counted.
RECORD_BYTES = 400
FRAME_BYTES = 300
LOCAL_BYTES = 110  # one rendered local

_EVENT_TRIGGERS = {S.LOOP_BLOCKED, S.TASK_STUCK, S.DEADLOCK}


def estimated_bytes(record: Record) -> int:
    """What ``record`` holds in memory, roughly (cheap: no walk of its values)."""
    if record[KIND] == EVENT:
        return RECORD_BYTES + 64 * len(cast(EventRecord, record)[EVENT_FIELDS])
    size = RECORD_BYTES
    for frame in cast(SwitchRecord, record)[FRAMES]:
        values = frame[1]
        size += FRAME_BYTES + (LOCAL_BYTES * len(values) if values is not None else 0)
    return size


def trigger_of(record: Record) -> str | None:
    """The trigger ``record`` is, or ``None``."""
    if record[KIND] != EVENT:
        return "slow_step" if cast(SwitchRecord, record)[LEVEL] == S.WARNING else None
    event = cast(EventRecord, record)
    name = event[EVENT_NAME]
    if name in _EVENT_TRIGGERS:
        return name
    if name == S.TASK_DONE and event[EVENT_FIELDS].get(S.OUTCOME) == S.EXCEPTION:
        return "task.failed"
    return None


class Recorder:
    """The ring, the triggers and the rate limit."""

    def __init__(
        self,
        write: Callable[[Record], object],
        write_incident: Callable[[int, list[Record]], object],
        make_event: Callable[[str, str, dict[str, Any]], Record],
        *,
        seconds: float,
        max_bytes: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._write = write
        self._write_incident = write_incident
        self._make_event = make_event
        self.window_ns = int(seconds * 1e9)
        self.max_bytes = max_bytes
        self._ring: deque[tuple[int, Record]] = deque()
        self._lock = threading.Lock()
        self.bytes = 0
        self._written_seq = -1  # records up to this seq were written for an incident
        self._recent: deque[float] = deque()  # monotonic times of the last incidents
        self.incidents = 0
        self.suppressed = 0  # since the last incident
        self.suppressed_total = 0
        self.evicted = 0

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's records are not the child's to write."""
        self._lock = threading.Lock()
        self._ring.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._ring)

    def put(self, record: Record) -> bool:
        """Keep ``record`` (the capture's emit); a trigger among records fires at once."""
        if record[KIND] == EVENT and cast(EventRecord, record)[EVENT_NAME] == S.SNAPSHOT:
            self._write(record)
            return True
        size = estimated_bytes(record)
        with self._lock:
            self._ring.append((size, record))
            self.bytes += size
            # The window follows the switches: while a loop is blocked (no switch), the
            # ring keeps what led up to the block, whatever other threads add.
            self._evict(cast(int, record[T_NS]) if record[KIND] != EVENT else None)
        reason = trigger_of(record)
        if reason is not None:
            self.trigger(reason)
        return True

    def _evict(self, now: int | None) -> None:
        ring = self._ring
        oldest = now - self.window_ns if now is not None else -1
        while ring and (self.bytes > self.max_bytes or cast(int, ring[0][1][T_NS]) < oldest):
            size, _ = ring.popleft()
            self.bytes -= size
            self.evicted += 1

    def trigger(self, trigger: str, reason: str = "", force: bool = False) -> int | None:
        """Write an incident for ``trigger``: its ``incident_id``, or ``None`` if the rate
        limit suppressed it (counted).  ``force`` skips the rate limit (at exit)."""
        now = self._monotonic()
        with self._lock:
            recent = self._recent
            while recent and recent[0] < now - 60:
                recent.popleft()
            limited = len(recent) >= PER_MINUTE or (recent and now - recent[-1] < MIN_INTERVAL_S)
            if limited and not force:
                self.suppressed += 1
                self.suppressed_total += 1
                return None
            recent.append(now)
            self.incidents += 1
            incident_id = self.incidents
            suppressed, self.suppressed = self.suppressed, 0
            written = self._written_seq
            records = [r for _, r in self._ring if r[SEQ] > written]
            if records:
                self._written_seq = max(written, records[-1][SEQ])
        fields = {
            S.INCIDENT_ID: incident_id,
            S.TRIGGER: trigger,
            S.REASON: reason or trigger,
            S.WINDOW_S: round(self.window_ns / 1e9, 3),
            S.RECORDS: len(records),
            S.SUPPRESSED: suppressed,
        }
        self._write(self._make_event(S.INCIDENT, S.WARNING, fields))
        self._write_incident(incident_id, records)
        return incident_id
