"""Putting the pieces together: install, uninstall, flush, exit and fork handling."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._blocks import BlockIndex
from ._capture import TOOL_IDS, CaptureOptions, Monitor
from ._chain import ChainCapture, ModuleFilter
from ._config import Config
from ._inspect import Inspector
from ._lifecycle import TaskLifecycle, UnawaitedHook
from ._loops import LoopRegistry
from ._render import Processor, Renderer, note_thread_name
from ._sinks import Sink, open_sink
from ._values import LocalsRenderer
from ._warn import warn
from ._watchdog import Watchdog
from ._writer import Writer

__all__ = [
    "current_config",
    "flush",
    "install",
    "is_installed",
    "monitoring",
    "snapshot",
    "uninstall",
]


@dataclass
class _Session:
    config: Config
    monitor: Monitor
    writer: Writer
    loops: LoopRegistry
    watchdog: Watchdog
    inspector: Inspector
    unawaited: UnawaitedHook | None


_lock = threading.RLock()
_session: _Session | None = None
_hooks_registered = False


def _register_process_hooks() -> None:
    global _hooks_registered
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(_at_exit)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    try:
        uninstall()
    except Exception as exc:  # never let our exit handler fail the process
        warn(f"coroscope: error at exit: {type(exc).__name__}: {exc}")


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    session = _session
    if session is None:
        return
    try:
        session.monitor.reset_after_fork()
        session.writer.reset_after_fork()
        _flush_at_multiprocessing_exit()
        session.monitor.set_emit(session.writer.first_put)
        session.watchdog.reset_after_fork()
        session.loops.clear()
    except Exception as exc:
        warn(f"coroscope: could not restart after fork ({type(exc).__name__}: {exc})")


class _ForkToken:
    """Kept alive so multiprocessing's weak after-fork registry keeps our hook."""


_FORK_TOKEN = _ForkToken()


def _flush_at_multiprocessing_exit() -> None:
    # A multiprocessing child (fork start method) ends with os._exit(), which skips
    # atexit: flush through multiprocessing's own exit finalizers instead.  They are
    # cleared when its child starts, so register from its after-fork hook, which runs later.
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return

    def register(_: object) -> None:
        util.Finalize(None, _at_exit, exitpriority=0)

    util.register_after_fork(_FORK_TOKEN, register)


def install(
    *,
    output: str | None = None,
    locals: str | None = None,
    processors: Iterable[Processor] = (),
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> bool:
    """Start monitoring every asyncio task switch of this process.

    Every setting of :class:`~coroscope.Config` can be given by its field name
    (``output="switches.log"``, ``mode="slow"``, ``sample=0.1``, ``exclude=["asyncio.*"]``,
    ...); settings left out (or ``None``) come from the ``COROSCOPE_*`` environment
    variables (``environ``, by default ``os.environ``), then from the defaults: see the
    README's settings table.  ``processors`` are structlog processors run on each record,
    on the writer thread, before it is rendered.

    Returns ``False``, after one message on stderr, if no ``sys.monitoring`` tool id is
    free.  Raises :class:`~coroscope.ConfigError` (a ``ValueError``) for a bad value,
    ``TypeError`` for an unknown setting and ``OSError`` if the output cannot be opened.
    Installing again replaces the running installation.
    """
    config = Config.from_env(
        os.environ if environ is None else environ, output=output, locals=locals, **settings
    )
    return _install(config, tuple(processors))


def _install(config: Config, processors: tuple[Processor, ...], sink: Sink | None = None) -> bool:
    global _session
    with _lock:
        if _session is not None:
            _uninstall_locked()
        if sink is None:
            sink = open_sink(
                config.output,
                service=config.service,
                timeout=config.net_timeout,
                resend_bytes=config.resend_bytes,
            )
        renderer = LocalsRenderer.from_config(config) if config.locals != "off" else None
        chain = ChainCapture(renderer, BlockIndex(), ModuleFilter(config.include, config.exclude))
        monitor = Monitor(lambda record: None, chain, capture_options(config), on_disabled=warn)
        writer = Writer(
            sink,
            Renderer(processors),
            capacity=config.buffer_size,
            next_seq=monitor.next_seq,
            on_started=monitor.set_emit,
            max_record_bytes=config.max_record_bytes,
        )
        monitor.set_emit(writer.first_put)
        loops = LoopRegistry()
        inspector = Inspector(monitor, chain, loops, monitor.emit_event, stuck_s=config.stuck_s)
        watchdog = Watchdog(
            loops,
            monitor.emit_event,
            inspector.task_of,
            blocked_ms=config.blocked_ms,
            stuck_s=config.stuck_s,
            report_stuck=inspector.report_stuck if config.stuck_s > 0 else None,
        )
        loops.on_first = watchdog.start
        lifecycle = TaskLifecycle(
            monitor.emit_event, loops, monitor.roots.remove, task_done=config.task_done
        )
        monitor.on_task_start = lifecycle.task_started
        if not monitor.start():
            ids = " and ".join(str(i) for i in TOOL_IDS)
            warn(
                f"coroscope: sys.monitoring tool ids {ids} are both in use by other tools; "
                "coroscope is off for this process"
            )
            sink.close()
            return False
        unawaited = UnawaitedHook(monitor.emit_event) if config.unawaited else None
        if unawaited is not None:
            unawaited.install()
        try:
            inspector.install_signal(config.snapshot_signal)
        except (OSError, ValueError) as exc:
            warn(f"coroscope: snapshot signal not installed ({exc})")
        _session = _Session(config, monitor, writer, loops, watchdog, inspector, unawaited)
        _register_process_hooks()
        _adopt_running_tasks(monitor, loops)
        return True


def capture_options(config: Config) -> CaptureOptions:
    """The capture-side view of a configuration."""
    never = 2**62  # a threshold no step or wait reaches
    return CaptureOptions(
        mode=config.mode,
        slow_step_ns=int(config.slow_step_ms * 1e6) if config.slow_step_ms > 0 else never,
        slow_await_ns=int(config.slow_await_ms * 1e6),
        sample=config.sample,
    )


def _adopt_running_tasks(monitor: Monitor, loops: LoopRegistry) -> None:
    """Make tasks that started before coroscope visible from their next switch on.

    A task's root is found when its first step starts, so tasks already running would never
    be seen.  Their loops are found through asyncio's registry of tasks; each running loop
    adopts its own tasks on its own thread (the calling thread's loop at once).
    """
    current = asyncio.events._get_running_loop()
    found: dict[int, asyncio.AbstractEventLoop] = {}
    if current is not None:
        found[id(current)] = current
    registries = (
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
                _adopt_on_loop(monitor, loops, loop)
            elif loop.is_running():
                loop.call_soon_threadsafe(_adopt_on_loop, monitor, loops, loop)
        except Exception as exc:
            warn(f"coroscope: could not adopt running tasks ({type(exc).__name__}: {exc})")


def _adopt_on_loop(monitor: Monitor, loops: LoopRegistry, loop: asyncio.AbstractEventLoop) -> None:
    # Runs on the loop's own thread, between tasks.
    try:
        loops.register(loop)
        note_thread_name()
        monitor.adopt(asyncio.all_tasks(loop))
    except Exception as exc:
        warn(f"coroscope: could not adopt running tasks ({type(exc).__name__}: {exc})")


def uninstall(timeout: float | None = None) -> None:
    """Stop monitoring, write what is buffered (within ``timeout`` seconds, by default
    the configured flush timeout) and release everything.  Safe to call when not installed.
    """
    with _lock:
        _uninstall_locked(timeout)


def _uninstall_locked(timeout: float | None = None) -> None:
    global _session
    session, _session = _session, None
    if session is None:
        return
    session.monitor.stop()
    session.watchdog.stop()
    session.inspector.uninstall_signal()
    if session.unawaited is not None:
        session.unawaited.uninstall()
    session.writer.shutdown(session.config.flush_timeout if timeout is None else timeout)
    errors = session.monitor.errors
    if errors and session.monitor.active:
        warn(f"coroscope: {errors} internal errors during capture")


def flush(timeout: float = 2.0) -> bool:
    """Write everything captured so far; ``True`` if done within ``timeout`` seconds."""
    session = _session
    if session is None:
        return True
    return session.writer.flush(timeout)


def snapshot() -> int | None:
    """Log a ``snapshot`` record for every live task of every loop coroscope has seen.

    The calling thread's loop is dumped before this returns; other loops as soon as their
    threads run a callback.  Returns the ``snapshot_id`` shared by the records, or ``None``
    when coroscope is not installed.
    """
    session = _session
    if session is None:
        return None
    return session.inspector.snapshot()


def is_installed() -> bool:
    """Whether coroscope is monitoring this process."""
    session = _session
    return session is not None and session.monitor.active


def current_config() -> Config | None:
    """The configuration in force, or ``None`` when not installed."""
    session = _session
    return session.config if session is not None else None


@contextlib.contextmanager
def monitoring(**settings: Any) -> Iterator[bool]:
    """Monitor the ``with`` block: ``install(**settings)`` on entry, ``uninstall()`` on exit.

    Yields what :func:`install` returned.
    """
    installed = install(**settings)
    try:
        yield installed
    finally:
        if installed:
            uninstall()
