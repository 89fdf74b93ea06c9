"""One installation of coroscope: every part built from a :class:`~coroscope.Config`.

A :class:`Session` is built whole first (:meth:`Session.build`: the output opened, every
part made, nothing started), so that a failure leaves nothing behind; then
:meth:`~Session.start` turns monitoring on, :meth:`~Session.stop` turns it off again
(the writer still holds what was captured) and :meth:`~Session.close` writes what is
left and closes the output.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from . import _implementation
from ._config import Config
from ._record import Record
from ._warn import warn
from .capture import (
    TOOL_IDS,
    Capture,
    CaptureOptions,
    ChainCapture,
    ModuleFilter,
    Places,
    WatchCapture,
)
from .delivery import Processor, Renderer, Writer
from .diagnostics import Inspector, LoopRegistry, NeverAwaited, Watchdog
from .sinks import Sink, open_sink
from .values import LocalsRenderer
from .values._redact import patterns as redaction_patterns

__all__ = ["FORK_PAUSE_S", "Session"]

#: How long a fork() may wait for each of coroscope's threads to pause.  A writer stuck in
#: a stalled output longer than that is left running (the fork then warns as for any
#: multi-threaded process).
FORK_PAUSE_S = 0.5
_COUNTS_THREADS_AFTER_FORK_HOOKS = sys.version_info[:2] == (3, 13)


class Session:
    """Capture, writer, diagnostics and hooks of one installation."""

    def __init__(self, config: Config, processors: tuple[Processor, ...], sink: Sink) -> None:
        self.config = config
        self.processors = processors
        #: The implementation of the capture core this session runs.
        self.implementation = _implementation.selected()
        if not _implementation.forced_python(os.environ):
            fallback = _implementation.fallback_message()
            if fallback is not None:
                warn(fallback)
        renderer = LocalsRenderer.from_config(config) if config.locals != "off" else None
        chain = ChainCapture(renderer, Places(ModuleFilter(config.include, config.exclude)))
        options = CaptureOptions.from_config(config)
        capture: Capture
        if config.mode == "watch":  # no per-switch callbacks: nothing for the native core
            capture = WatchCapture(chain, options, on_disabled=warn)
        else:
            native = self.implementation == _implementation.NATIVE
            core = _implementation.core() if native else None
            capture = Capture(chain, options, on_disabled=warn, core=core)
        self.capture = capture
        self.writer = writer = Writer(
            sink,
            Renderer(processors),
            capacity=config.buffer_size,
            # Looked up at each call: a forked child's capture numbers anew.
            next_seq=lambda: capture.next_seq(),  # noqa: PLW0108
            max_record_bytes=config.max_record_bytes,
        )
        capture.set_emit(writer.put)
        if renderer is not None:  # compile the redaction patterns off the loop threads
            writer.warm_up += [redaction_patterns, renderer.r.deny.compile]
        self.loops = loops = LoopRegistry()
        self.inspector = inspector = Inspector(
            capture,
            loops,
            capture.emit_event,
            stuck_s=config.stuck_s,
            stuck_ignore=config.stuck_ignore,
        )
        self.watchdog = watchdog = Watchdog(
            loops,
            capture.emit_event,
            inspector.task_of,
            blocked_ms=config.blocked_ms,
            stuck_s=config.stuck_s,
            report_stuck=inspector.report_stuck if config.stuck_s > 0 else None,
        )
        if isinstance(capture, WatchCapture):
            capture.task_id_of = inspector.task_id
        loops.on_first = watchdog.loop_added
        capture.on_loop = loops.seen
        if config.unawaited:
            capture.watch_unawaited(NeverAwaited(capture.emit_event).record)

    @classmethod
    def build(
        cls, config: Config, processors: tuple[Processor, ...], sink: Sink | None = None
    ) -> Session:
        """A whole session, not started; raises ``OSError`` if the output cannot be opened."""
        if sink is None:
            sink = open_sink(
                config.output,
                service=config.service,
                timeout=config.net_timeout,
                resend_bytes=config.resend_bytes,
            )
        try:
            return cls(config, processors, sink)
        except BaseException:
            sink.close()
            raise

    @property
    def active(self) -> bool:
        """Whether monitoring is on."""
        return self.capture.active

    # -- monitoring on and off ----------------------------------------------------------

    def start(self) -> bool:
        """Turn monitoring on: ``False`` if no tool id is free (nothing else is started)."""
        if not self.capture.start():
            return False
        self.writer.start()
        self.watchdog.start()
        try:
            self.inspector.install_signal(self.config.snapshot_signal)
        except (OSError, ValueError) as exc:
            warn(f"coroscope: snapshot signal not installed ({exc})")
        adopt_running_tasks(self)
        return True

    def stop(self) -> None:
        """Turn monitoring off and give back the hooks; the writer keeps its records."""
        self.capture.stop()
        self.watchdog.stop()
        self.inspector.uninstall_signal()

    def close(self, timeout: float | None = None) -> bool:
        """Write what is buffered (within ``timeout``, by default the flush timeout) and
        close the output; ``True`` if everything was written."""
        return self.writer.shutdown(self.config.flush_timeout if timeout is None else timeout)

    # -- fork ---------------------------------------------------------------------------

    def before_fork(self, timeout: float = FORK_PAUSE_S) -> None:
        """Pause the threads, so that the process has none of coroscope's at the fork."""
        self.watchdog.pause(timeout)
        self.writer.pause(timeout)

    def after_fork_in_parent(self) -> None:
        """Resume the threads paused for the fork.

        Python 3.13 counts the process's threads for its multi-threaded-fork warning after
        the after-fork hooks have run (3.12 before them, 3.14 before the fork): there the
        threads resume with the next record instead, so that they are not counted.
        """
        if not self.active:
            return
        if _COUNTS_THREADS_AFTER_FORK_HOOKS:
            self.capture.set_emit(self._resume_then_put)
        else:
            self._resume_threads()

    def _resume_then_put(self, record: Record) -> bool:
        self.capture.set_emit(self.writer.put)
        self._resume_threads()
        return self.writer.put(record)

    def _resume_threads(self) -> None:
        self.writer.start()
        self.watchdog.start()

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks, numbers, writer and watchdog; no loops."""
        self.capture.reset_after_fork()
        self.writer.reset_after_fork()
        self.watchdog.reset_after_fork()
        self.loops.clear()
        if self.active:
            self.writer.start()
            self.watchdog.start()


def tool_ids_taken_message() -> str:
    """What to say when every tool id coroscope may use is taken."""
    ids = " and ".join(str(i) for i in TOOL_IDS)
    return (
        f"coroscope: sys.monitoring tool ids {ids} are both in use by other tools; "
        "coroscope is off for this process"
    )


def adopt_running_tasks(session: Session) -> None:
    """Make tasks that started before coroscope visible from their next switch on.

    A task's root is found when its first step starts, so tasks already running would never
    be seen.  Their loops are found through asyncio's registry of tasks; each running loop
    adopts its own tasks on its own thread (the calling thread's loop at once).
    """
    current = asyncio.events._get_running_loop()
    found: dict[int, asyncio.AbstractEventLoop] = {}
    if current is not None:
        found[id(current)] = current
    registries: tuple[Any, ...] = (
        getattr(asyncio.tasks, "_scheduled_tasks", ()),
        getattr(asyncio.tasks, "_eager_tasks", ()),
    )
    for _ in range(3):  # the registries may change size under us, from other threads
        try:
            for registry in registries:
                for task in list(registry):
                    loop = task.get_loop()
                    found.setdefault(id(loop), loop)
            break
        except RuntimeError:
            continue
    for loop in found.values():
        try:
            if loop is current:
                _adopt_on_loop(session, loop)
            elif loop.is_running():
                loop.call_soon_threadsafe(_adopt_on_loop, session, loop)
        except Exception as exc:
            warn(f"coroscope: could not adopt running tasks ({type(exc).__name__}: {exc})")


def _adopt_on_loop(session: Session, loop: asyncio.AbstractEventLoop) -> None:
    # Runs on the loop's own thread, between tasks.
    if not session.active:
        return
    try:
        session.loops.register(loop)
        session.capture.adopt(asyncio.all_tasks(loop))
    except Exception as exc:
        warn(f"coroscope: could not adopt running tasks ({type(exc).__name__}: {exc})")
