"""The background writer: drains the buffer, renders records and delivers them in batches.

Modelled on the OpenTelemetry SDK's batch processor: the producer (capture) never blocks;
one daemon thread wakes on a timer or on request, renders a batch and hands it to the sink
in one call; ``flush`` and ``shutdown`` are bounded in time; after ``fork()`` the child
starts over with an empty buffer.

The thread is a :class:`~coroscope._threads.BackgroundThread`, started at install, which
the host's thread bookkeeping does not see; it is paused across ``fork()`` (the process
has no coroscope thread at the fork, so a pre-forking server gets no multi-threaded-fork
warning) and resumed after it, in the parent and in the child.

Delivery and loss:

* Every record carries a ``seq`` taken at capture; the writer's own ``dropped`` records
  take theirs from the same counter.  Every number is either delivered or counted in a
  ``dropped`` record (``count``, ``reason``), written as soon as the sink works again.
* When the sink fails, the records it did not take are kept and retried, first, with
  capped exponential backoff (``RETRY_INITIAL_S`` doubling up to ``RETRY_MAX_S``, with
  jitter).  Meanwhile the buffer is not drained: capture keeps filling it and, once it is
  full, drops records with reason ``buffer_full``.  Records a sink gives up on for good
  (see :mod:`._sinks`) are counted under the reason it gives.
* Records whose rendering is longer than the cap are shrunk (:mod:`._shrink`).
* Each record goes to the sink with its level beside it, so no sink parses it back.
* A loss report is written alone, so that its fate is known: if the sink loses it, its
  count is reported again, together with the report itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from _random import Random
from collections import deque
from collections.abc import Callable, Mapping
from typing import cast

from .. import _schema as S
from .._record import IN_INCIDENT, INCIDENT_BATCH, KIND, IncidentBatch, Record, level_of
from .._threads import BackgroundThread, ThreadNames
from .._warn import warn
from ..sinks import PartialWrite, Sink
from ._buffer import RecordBuffer
from ._clock import WallClock
from ._events import EventBuilder
from ._render import BARE, Renderer
from ._shrink import Shrinker

__all__ = ["Writer"]

BATCH = 4096
INTERVAL_S = 0.05
RETRY_INITIAL_S = 0.1
RETRY_MAX_S = 5.0
# The longest wait a receiver's Retry-After can impose.
RETRY_AFTER_MAX_S = 60.0

_Report = tuple[bytes, str, int]
_jitter = Random().random


class Writer:
    """Owns the buffer, the writer thread and the sink."""

    def __init__(
        self,
        sink: Sink,
        renderer: Renderer,
        *,
        capacity: int,
        next_seq: Callable[[], int],
        max_record_bytes: int,
        interval: float = INTERVAL_S,
        retry_initial: float = RETRY_INITIAL_S,
        retry_max: float = RETRY_MAX_S,
    ) -> None:
        self.sink = sink
        self.renderer = renderer
        self.capacity = capacity
        self.interval = interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._next_seq = next_seq
        limit = max_record_bytes - int(getattr(sink, "overhead", 0) or 0)
        sink_limit = getattr(sink, "record_limit", None)
        if isinstance(sink_limit, int) and sink_limit > 0:
            limit = min(limit, sink_limit)
        self.record_limit = max(limit, 256)
        #: Run on the writer thread when it starts: work kept out of start-up and off the
        #: loop threads (compiling the redaction patterns, say).
        self.warm_up: list[Callable[[], object]] = []
        self._init_state()

    def _init_state(self) -> None:
        self.buffer: RecordBuffer[Record] = RecordBuffer(self.capacity)
        self.clock = WallClock()
        self.builder = EventBuilder(self.clock, ThreadNames())
        self.shrinker = Shrinker(self.record_limit, self.renderer, BARE)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._cycle = threading.Condition(threading.Lock())
        self._cycles = 0
        self._busy = False
        self._stopping = False
        self._hurry = False
        self._thread = BackgroundThread("writer", self._body, self._wake.set)
        self._lost: dict[str, int] = {}
        self._pending: list[bytes] = []
        self._incident: deque[Record] = deque()  # an incident's records, being written
        self._pending_levels: list[str] = []
        self._report_line: _Report | None = None
        self._sink_failing = False
        self._failures = 0
        self._retry_at = 0.0
        self.written = 0
        self.truncated = 0

    # -- producer side --------------------------------------------------------------------

    def put(self, record: Record) -> bool:
        """Hand a record to the writer (the capture's emit): ``False`` if it was dropped."""
        return self.buffer.put(record)

    def put_incident(self, incident_id: int, records: list[Record]) -> bool:
        """Hand an incident's records to the writer as one item (recorder mode), each to be
        written with ``incident_id``: the caller only passes a list."""
        return self.buffer.put((INCIDENT_BATCH, incident_id, records))

    def _take(self, limit: int) -> list[Record]:
        """Up to ``limit`` records, oldest first, an incident's records in its place."""
        incident = self._incident
        if not incident:
            records = self.buffer.drain(limit)
            if all(record[KIND] != INCIDENT_BATCH for record in records):
                return records
            for record in records:
                if record[KIND] == INCIDENT_BATCH:
                    _, incident_id, members = cast(IncidentBatch, record)
                    incident.extend((IN_INCIDENT, incident_id, r) for r in members)
                else:
                    incident.append(record)
        return [incident.popleft() for _ in range(min(limit, len(incident)))]

    def start(self) -> None:
        """Start (or resume) the writer thread if it is not running."""
        with self._lock:
            if self._stopping:
                return
        self._thread.start()

    def pause(self, timeout: float) -> bool:
        """Stop the thread for a ``fork()`` (:meth:`start` resumes it); ``True`` if it ended
        within ``timeout`` seconds."""
        return self._thread.pause(timeout)

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive."""
        return self._thread.alive

    # -- control --------------------------------------------------------------------------

    def _idle(self) -> bool:
        return (
            not len(self.buffer)
            and not self._busy
            and not self._pending
            and not self._incident
            and self._report_line is None
            and not self._lost
            and self.buffer._dropped == 0
        )

    def _unwritten(self) -> int:
        return (
            len(self.buffer)
            + len(self._pending)
            + len(self._incident)
            + (self._report_line[2] + 1 if self._report_line is not None else 0)
            + sum(self._lost.values())
            + self.buffer.take_dropped()
        )

    def flush(self, timeout: float) -> bool:
        """Write everything buffered now; ``True`` if done within ``timeout`` seconds.

        A sink that is backing off after a failure is tried again at once; if that
        attempt fails too, ``flush`` returns ``False`` without waiting for the deadline.
        """
        deadline = time.monotonic() + timeout
        if not self.running:
            if self._idle():
                return True
            self.start()
        cycles_at_start = self._cycles
        while True:
            with self._cycle:
                if self._idle():
                    return True
                if not self.running:
                    return False
                # A whole cycle started after this flush and the sink still fails.
                if self._sink_failing and self._cycles >= cycles_at_start + 2:
                    return False
                target = self._cycles + 1
                self._hurry = True
                self._wake.set()
                while self._cycles < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cycle.wait(remaining)

    def shutdown(self, timeout: float) -> bool:
        """Flush within ``timeout``, stop the thread and close the sink.

        Returns ``False`` if records were still unwritten when the time ran out; they are
        counted in a message on stderr, since the log itself could not take them.
        """
        done = self.flush(timeout)
        with self._lock:
            self._stopping = True
        self._thread.stop(max(0.0, min(timeout, 0.5)) if done else 0.0)
        if not done:
            warn(
                f"coroscope: {self._unwritten()} records not written to {self.sink.name}: "
                f"it did not finish within {timeout:g} s at exit"
            )
        else:
            with contextlib.suppress(Exception):
                self.sink.close()
        return done

    def reset_after_fork(self) -> None:
        """In a forked child: no thread, an empty buffer, this process's pid, and a sink
        that holds no connection or record of the parent's."""
        self.buffer.clear()
        self._init_state()
        reset = getattr(self.sink, "reset_after_fork", None)
        if reset is not None:
            reset()

    # -- the thread -----------------------------------------------------------------------

    def _body(self, should_stop: Callable[[], bool]) -> None:
        warm_up = list(self.warm_up)
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            hurry, self._hurry = self._hurry, False
            if warm_up and not hurry and not self._stopping:
                # After the first interval: a process that ends at once does not wait for it.
                self._warm_up(warm_up)
                warm_up = []
            try:
                self._busy = True
                self._write_pending(hurry)
            except Exception as exc:  # a bug here must not kill the writer silently
                warn(f"coroscope: writer error: {type(exc).__name__}: {exc}")
            finally:
                self._busy = False
                with self._cycle:
                    self._cycles += 1
                    self._cycle.notify_all()
            if should_stop():
                return

    @staticmethod
    def _warm_up(jobs: list[Callable[[], object]]) -> None:
        for job in jobs:  # work kept off the loop threads and out of start-up
            try:
                job()
            except Exception as exc:
                warn(f"coroscope: writer warm-up error: {type(exc).__name__}: {exc}")

    def _count_lost(self, reason: str, count: int) -> None:
        if count:
            self._lost[reason] = self._lost.get(reason, 0) + count

    def _write_pending(self, hurry: bool = False) -> None:
        self.clock.sync()
        # Records carry only the thread id; learn the names of live threads once per cycle
        # so that records of a thread that ends soon after still name it.
        self.builder.threads.learn_live()
        while True:
            self._count_lost("buffer_full", self.buffer.take_dropped())
            if self._retry_at and not hurry and time.monotonic() < self._retry_at:
                return  # backing off: the buffer fills meanwhile
            if self._report_line is not None and not self._deliver_report():
                return
            if self._pending and not self._deliver(self._pending, self._pending_levels):
                return
            if self._lost and not self._report():
                return
            records = self._take(BATCH)
            if not records:
                return
            lines, levels = self._render(records)
            if lines and not self._deliver(lines, levels):
                return
            if len(records) < BATCH:
                return

    # -- delivery -------------------------------------------------------------------------

    def _deliver(self, lines: list[bytes], levels: list[str]) -> bool:
        """Hand ``lines`` to the sink; keep what it did not take for a retry."""
        try:
            result = self.sink.write_batch(lines, levels)
        except PartialWrite as exc:
            self._settle(exc.written, exc.lost)
            self._pending = lines[exc.written :]
            self._pending_levels = levels[exc.written :]
            self._failed(exc, exc.retry_after)
            return False
        except Exception as exc:
            self._pending, self._pending_levels = lines, levels
            self._failed(exc)
            return False
        self._settle(len(lines), result)
        self._pending, self._pending_levels = [], []
        self._succeeded()
        return True

    def _settle(self, delivered: int, lost: Mapping[str, int] | None) -> None:
        given_up = 0
        if lost:
            for reason, count in lost.items():
                self._count_lost(reason, count)
                given_up += count
        self.written += delivered - given_up

    def _report(self) -> bool:
        """Write one ``dropped`` record per reason, each alone."""
        for reason in list(self._lost):
            count = self._lost.pop(reason)
            self._report_line = (self._loss_line(reason, count), reason, count)
            if not self._deliver_report():
                return False
        return True

    def _deliver_report(self) -> bool:
        assert self._report_line is not None
        line, reason, count = self._report_line
        try:
            lost = self.sink.write_batch([line], [S.WARNING])
        except Exception as exc:
            self._failed(exc, exc.retry_after if isinstance(exc, PartialWrite) else None)
            return False  # the same line (same seq) is tried again first
        self._report_line = None
        self._succeeded()
        if lost:  # the report itself was lost: its count and its own seq are reported later
            self._count_lost(reason, count)
            self._count_lost(next(iter(lost)), 1)
            return False
        self.written += 1
        return True

    def _failed(self, exc: BaseException, retry_after: float | None = None) -> None:
        self._failures += 1
        delay = min(self.retry_max, self.retry_initial * 2 ** min(self._failures - 1, 30))
        delay *= 0.8 + 0.4 * _jitter()
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_MAX_S))
        self._retry_at = time.monotonic() + delay
        if not self._sink_failing:
            self._sink_failing = True
            cause = exc.cause if isinstance(exc, PartialWrite) else exc
            warn(
                f"coroscope: cannot write to {self.sink.name} ({type(cause).__name__}: {cause}); "
                f"retrying with backoff, holding up to {self.capacity} records; "
                "losses are counted and reported"
            )

    def _succeeded(self) -> None:
        if self._sink_failing:
            self._sink_failing = False
            warn(f"coroscope: writing to {self.sink.name} again")
        self._failures = 0
        self._retry_at = 0.0

    # -- rendering ------------------------------------------------------------------------

    def _loss_line(self, reason: str, count: int) -> bytes:
        event = self.builder.dropped(self._next_seq(), count, reason)
        try:
            line = self.renderer(event)
        except Exception:
            # A processor rejected our own record: fall back to the bare renderer.
            return BARE(event)
        # A processor made it too long: the bare rendering is small.
        return line if len(line) <= self.record_limit else BARE(event)

    def _render(self, records: list[Record]) -> tuple[list[bytes], list[str]]:
        """The records rendered, and their levels."""
        build = self.builder.build
        render = self.renderer
        drop = render.drop
        limit = self.record_limit
        lines: list[bytes] = []
        levels: list[str] = []
        filtered = failed = 0
        for record in records:
            try:
                line = render(build(record))
                if len(line) > limit:
                    # Built again: a processor may have changed the first event dict.
                    line = self.shrinker.fit(build(record), line)
                    self.truncated += 1
            except drop:
                filtered += 1
                continue
            except Exception:
                failed += 1
                continue
            lines.append(line)
            levels.append(level_of(record))
        self._count_lost("filtered", filtered)
        self._count_lost("render_error", failed)
        return lines, levels
