"""The background writer: drains the buffer, renders records and writes them in batches.

Modelled on the OpenTelemetry SDK's batch processor: the producer (capture) never blocks;
one daemon thread wakes on a timer or on request, renders a batch and writes it with one
call to the sink; ``flush`` and ``shutdown`` are bounded in time; after ``fork()`` the child
starts over with an empty buffer and no thread until its first record.

The thread is started by the first record, not at install: a process that forks before
its first switch (a pre-forking server) has no coroscope thread at the fork.

Loss is never silent: records dropped because the buffer was full, because the sink
failed, or because a processor failed or dropped them are counted by reason and reported
with a ``dropped`` record as soon as a write succeeds again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from ._buffer import RecordBuffer
from ._record import SwitchRecord
from ._render import EventBuilder, Renderer, ThreadNames, WallClock
from ._sinks import Sink
from ._warn import warn

__all__ = ["Writer"]

BATCH = 4096
INTERVAL_S = 0.05


class Writer:
    """Owns the buffer, the writer thread and the sink."""

    def __init__(
        self,
        sink: Sink,
        renderer: Renderer,
        *,
        capacity: int,
        next_seq: Callable[[], int],
        on_started: Callable[[Callable[[SwitchRecord], bool]], None],
        interval: float = INTERVAL_S,
    ) -> None:
        self.sink = sink
        self.renderer = renderer
        self.capacity = capacity
        self.interval = interval
        self._next_seq = next_seq
        self._on_started = on_started
        self._init_state()

    def _init_state(self) -> None:
        self.buffer: RecordBuffer[SwitchRecord] = RecordBuffer(self.capacity)
        self.clock = WallClock()
        self.builder = EventBuilder(self.clock, ThreadNames())
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._cycle = threading.Condition(threading.Lock())
        self._cycles = 0
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lost: dict[str, int] = {}
        self._sink_failing = False
        self.written = 0

    # -- producer side --------------------------------------------------------------------

    def first_put(self, record: SwitchRecord) -> bool:
        """The capture's emit until the thread runs: start it, then hand over to the buffer."""
        self.start()
        return self.buffer.put(record)

    def start(self) -> None:
        """Start the writer thread if it is not running."""
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            thread = threading.Thread(target=self._run, name="coroscope-writer", daemon=True)
            thread.start()
            self._thread = thread
        self._on_started(self.buffer.put)

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- control --------------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Write everything buffered now; ``True`` if done within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if self._thread is None:
            if not len(self.buffer) and not self._lost:
                return True
            self.start()
        cycles_at_start = self._cycles
        while True:
            with self._cycle:
                if not len(self.buffer) and not self._busy and not self._lost_pending():
                    return True
                if not self.running:
                    return False
                if self._sink_failing and self._cycles > cycles_at_start:
                    return False
                target = self._cycles + 1
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
            thread = self._thread
        self._wake.set()
        if thread is not None and done:
            thread.join(max(0.0, min(timeout, 0.5)))
        if not done:
            left = len(self.buffer) + sum(self._lost.values()) + self.buffer.take_dropped()
            warn(
                f"coroscope: {left} records not written to {self.sink.name}: "
                f"it did not finish within {timeout:g} s at exit"
            )
        else:
            try:
                self.sink.close()
            except Exception:
                pass
        return done

    def reset_after_fork(self) -> None:
        """In a forked child: no thread, an empty buffer, this process's pid."""
        self._init_state()

    # -- the thread -----------------------------------------------------------------------

    def _lost_pending(self) -> bool:
        return bool(self._lost) or self.buffer._dropped > 0

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._busy = True
                self._write_pending()
            except Exception as exc:  # a bug here must not kill the writer silently
                warn(f"coroscope: writer error: {type(exc).__name__}: {exc}")
            finally:
                self._busy = False
                with self._cycle:
                    self._cycles += 1
                    self._cycle.notify_all()
            if stopping:
                return

    def _count_lost(self, reason: str, count: int) -> None:
        if count:
            self._lost[reason] = self._lost.get(reason, 0) + count

    def _write_pending(self) -> None:
        self.clock.sync()
        while True:
            self._count_lost("buffer_full", self.buffer.take_dropped())
            records = self.buffer.drain(BATCH)
            if not records and not self._lost:
                return
            lines = self._render(records)
            lost_before = dict(self._lost)
            report = self._loss_lines(lost_before)
            if not report and not lines:
                if not records:
                    return
                continue
            try:
                self.sink.write_batch(report + lines)
            except Exception as exc:
                # The loss report's own records took numbers too: they are lost with the batch.
                self._count_lost("sink_error", len(lines) + len(report))
                if not self._sink_failing:
                    self._sink_failing = True
                    warn(
                        f"coroscope: cannot write to {self.sink.name} "
                        f"({type(exc).__name__}: {exc}); records are dropped and counted"
                    )
                return
            if self._sink_failing:
                self._sink_failing = False
            for reason, count in lost_before.items():
                left = self._lost.get(reason, 0) - count
                if left > 0:
                    self._lost[reason] = left
                else:
                    self._lost.pop(reason, None)
            self.written += len(lines)
            if len(records) < BATCH:
                return

    def _loss_lines(self, lost: dict[str, int]) -> list[bytes]:
        lines = []
        for reason, count in lost.items():
            event = self.builder.dropped(self._next_seq(), count, reason)
            try:
                lines.append(self.renderer(event))
            except Exception:
                # A processor rejected our own record: fall back to the bare renderer.
                lines.append(_BARE(event))
        return lines

    def _render(self, records: list[SwitchRecord]) -> list[bytes]:
        build = self.builder.switch
        render = self.renderer
        out: list[bytes] = []
        append = out.append
        filtered = failed = 0
        for record in records:
            try:
                append(render(build(record)))
            except structlog.DropEvent:
                filtered += 1
            except Exception:
                failed += 1
        self._count_lost("filtered", filtered)
        self._count_lost("render_error", failed)
        return out


_BARE: Callable[[dict[str, Any]], bytes] = Renderer()
