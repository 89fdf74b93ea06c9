"""One installation of coroscope: every part built from a :class:`~coroscope.Config`.

A :class:`Session` is built whole first (:meth:`Session.build`: the output opened, every
part made, nothing started), so that a failure leaves nothing behind; then
:meth:`~Session.start` turns monitoring on, :meth:`~Session.stop` turns it off again
(the writer still holds what was captured) and :meth:`~Session.close` writes what is
left and closes the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from . import _implementation
from . import _schema as S
from ._config import Config
from ._record import Record
from ._signals import SignalHook
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
from .capture._state import SwitchFields, TaskTable, state_class
from .delivery import Processor, Recorder, Renderer, Writer
from .diagnostics import Inspector, LoopRegistry, NeverAwaited, Watchdog
from .sinks import Sink, open_sink
from .values import LocalsRenderer
from .values._redact import patterns as redaction_patterns

if TYPE_CHECKING:
    from ._control import ControlServer

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
        self.chain = ChainCapture(renderer, Places(ModuleFilter(config.include, config.exclude)))
        self.capture = capture = self._capture_for(config, None)
        self.writer = writer = Writer(
            sink,
            Renderer(processors),
            capacity=config.buffer_size,
            # Looked up at each call: a forked child's (or a new mode's) capture numbers.
            next_seq=lambda: self.capture.next_seq(),  # noqa: PLW0108
            max_record_bytes=config.max_record_bytes,
        )
        self.recorder: Recorder | None = None
        #: The mode in force (``config.mode`` unless :meth:`set_mode` changed it).
        self.mode = config.mode
        self._revert: threading.Timer | None = None
        self._mode_lock = threading.Lock()
        if renderer is not None:  # compile the redaction patterns off the loop threads
            writer.warm_up += [redaction_patterns, renderer.r.deny.compile]
        self.loops = loops = LoopRegistry()
        self.inspector = inspector = Inspector(
            capture,
            loops,
            self.emit_event,
            stuck_s=config.stuck_s,
            stuck_ignore=config.stuck_ignore,
        )
        self.watchdog = watchdog = Watchdog(
            loops,
            self.emit_event,
            inspector.task_of,
            blocked_ms=config.blocked_ms,
            stuck_s=config.stuck_s,
            report_stuck=inspector.report_stuck if config.stuck_s > 0 else None,
        )
        loops.on_first = watchdog.loop_added
        self._never_awaited = NeverAwaited(self.emit_event).record
        self._wire(capture)
        self.dump_signal = SignalHook(self._on_dump_signal)
        self.control: ControlServer | None = None  # (COROSCOPE_CONTROL)

    def _capture_for(self, config: Config, previous: Capture | None) -> Capture:
        """A capture for ``config.mode``.  Every capture of the session shares the task
        table, the chain and (after a mode switch) the record numbers, so that a task keeps
        its id across modes."""
        options = CaptureOptions.from_config(config)
        native = self.implementation == _implementation.NATIVE
        core = _implementation.core() if native else None
        if previous is None:
            fields = core.SwitchState if core is not None else SwitchFields
            self.tasks = TaskTable(state_class(fields))
        capture: Capture
        if config.mode == "watch":  # no per-switch callbacks: nothing for the native core
            capture = WatchCapture(self.chain, options, on_disabled=warn, tasks=self.tasks)
        else:
            capture = Capture(self.chain, options, on_disabled=warn, core=core, tasks=self.tasks)
        if previous is not None:
            capture.next_seq = previous.next_seq
        return capture

    def _wire(self, capture: Capture) -> None:
        """Connect ``capture`` to the parts that hear from it, for the mode in force."""
        if isinstance(capture, WatchCapture):
            capture.task_id_of = self.inspector.task_id
        capture.on_loop = self.loops.seen
        if self.config.unawaited:
            capture.watch_unawaited(self._never_awaited)
        if self.mode == "recorder":
            recorder = self.recorder
            if recorder is None:
                recorder = self.recorder = Recorder(
                    self.writer.put,
                    self.writer.put_incident,
                    lambda *event: self.capture.event_record(*event),  # noqa: PLW0108
                    seconds=self.config.recorder_seconds,
                    max_bytes=self.config.recorder_bytes,
                )
            capture.set_emit(recorder.put)
            capture.on_slow_wait = lambda record: recorder.trigger("slow_wait")
        else:
            capture.set_emit(self.writer.put)
            capture.on_slow_wait = None

    def emit_event(
        self, event: str, level: str, fields: dict[str, Any], thread_id: int | None = None
    ) -> None:
        """Send a record other than a switch through the capture in force."""
        self.capture.emit_event(event, level, fields, thread_id)

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
            if self.config.mode == "recorder":
                self.dump_signal.install(
                    self.config.dump_signal, "incidents", " (coroscope.dump() still works)"
                )
        except (OSError, ValueError) as exc:
            warn(f"coroscope: signal not installed ({exc})")
        if self.config.control and self.control is None:
            # Imported here (at install, on the installing thread): only for this setting.
            from ._control import ControlServer

            try:
                self.control = ControlServer.start(self.config.control, self)
            except OSError as exc:
                warn(f"coroscope: control channel {self.config.control!r} not opened ({exc})")
        adopt_running_tasks(self)
        return True

    def stop(self) -> None:
        """Turn monitoring off and give back the hooks; the writer keeps its records."""
        with self._mode_lock:
            if self._revert is not None:
                self._revert.cancel()
                self._revert = None
        self.capture.stop()
        self.watchdog.stop()
        self.inspector.uninstall_signal()
        self.dump_signal.uninstall()
        if self.control is not None:
            self.control.close()
            self.control = None

    # -- run-time mode switches and incidents ---------------------------------------------

    def set_mode(self, mode: str, seconds: float | None = None) -> None:
        """Switch to ``mode`` now; after ``seconds`` (if given) back to the configured mode.

        The new mode's capture takes over the task table, so tasks keep their ids and
        tasks already running are followed from their next switch.  Raises ``ValueError``
        for an unknown mode or a bad duration.
        """
        self.config.replace(mode=mode)  # checks the name
        if seconds is not None and not (0 < seconds < float("inf")):
            raise ValueError("seconds must be a positive number")
        with self._mode_lock:
            if self._revert is not None:
                self._revert.cancel()
                self._revert = None
            previous = self.mode
            if mode != previous:
                self._switch_capture(mode, previous)
            if seconds is not None and mode != self.config.mode:
                timer = threading.Timer(seconds, self._revert_mode)
                timer.daemon = True
                timer.name = "coroscope-mode"
                self._revert = timer
                timer.start()
        self.emit_event(
            S.MODE_CHANGED,
            S.INFO,
            {S.MODE: mode, S.PREVIOUS: previous, S.UNTIL_S: seconds},
        )

    def _switch_capture(self, mode: str, previous: str) -> None:
        old = self.capture
        new = self._capture_for(self.config.replace(mode=mode), old)
        if previous == "watch":  # its states, if any, were not kept up to date
            for state in list(new.tasks.by_frame.values()):
                state.resumed_ns = state.suspended_ns = state.suspend_seq = -1
                state.frames = ()
        active = old.active
        old.stop()
        self.mode = mode
        self.capture = new
        self._wire(new)
        if active and new.start():
            adopt_running_tasks(self)

    def _revert_mode(self) -> None:
        try:
            if self.active:
                self.set_mode(self.config.mode)
        except Exception as exc:  # a timer thread: say it, never raise
            warn(f"coroscope: could not return to mode {self.config.mode} ({exc})")

    def dump(self, reason: str = "", trigger: str = "dump") -> int | None:
        """Write an incident in recorder mode: its id, ``None`` if rate-limited.  Raises
        ``RuntimeError`` in another mode."""
        recorder = self.recorder
        if recorder is None or self.mode != "recorder":
            raise RuntimeError(f"coroscope is in {self.mode} mode, not recorder")
        return recorder.trigger(trigger, reason)

    def _on_dump_signal(self) -> None:
        # From a signal handler: the incident is made on a thread of its own, so that the
        # interrupted code (which may hold the ring's lock) is not re-entered.
        def run() -> None:
            with contextlib.suppress(RuntimeError):
                self.dump("signal", trigger="signal")

        threading.Thread(target=run, name="coroscope-dump", daemon=True).start()

    def close(self, timeout: float | None = None) -> bool:
        """Write what is buffered (within ``timeout``, by default the flush timeout) and
        close the output; ``True`` if everything was written."""
        recorder = self.recorder
        if recorder is not None and recorder.suppressed:  # held back: not lost
            recorder.trigger("suppressed", "triggers held back by the rate limit", force=True)
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
        self._wire(self.capture)  # the emit of the mode in force
        self._resume_threads()
        return bool(self.capture.emit(record))

    def _resume_threads(self) -> None:
        self.writer.start()
        self.watchdog.start()

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks, numbers, writer and watchdog; no loops."""
        self.capture.reset_after_fork()
        if self.recorder is not None:
            self.recorder.reset_after_fork()
        if self.control is not None:
            self.control.forget_after_fork()  # the parent serves it
            self.control = None
        self._mode_lock = threading.Lock()
        if self._revert is not None:  # its timer thread is the parent's
            self._revert = None
            if self.active and self.mode != self.config.mode:
                self._switch_capture(self.config.mode, self.mode)
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
