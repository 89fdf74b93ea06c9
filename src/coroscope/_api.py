"""The public functions: install, uninstall, flush, snapshot, set_mode, dump; exit and fork
handling.

One :class:`~coroscope._session.Session` is installed at a time, under one lock.
Installing again replaces it whole: the new session is built and started before the old
one is stopped, so that a failure (an output that cannot be opened, no free tool id)
leaves the old one running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._config import Config
from ._session import Session, tool_ids_taken_message
from ._warn import warn
from .delivery import Processor
from .sinks import Sink

__all__ = [
    "current_config",
    "dump",
    "flush",
    "install",
    "is_installed",
    "monitoring",
    "set_mode",
    "snapshot",
    "uninstall",
]

_lock = threading.RLock()
_session: Session | None = None
_hooks_registered = False


def _register_process_hooks() -> None:
    global _hooks_registered
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(_at_exit)
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _at_exit() -> None:
    try:
        uninstall()
    except Exception as exc:  # never let our exit handler fail the process
        warn(f"coroscope: error at exit: {type(exc).__name__}: {exc}")


def _before_fork() -> None:
    session = _session
    if session is not None:
        try:
            session.before_fork()
        except Exception as exc:
            warn(f"coroscope: could not pause for fork ({type(exc).__name__}: {exc})")


def _after_fork_in_parent() -> None:
    session = _session
    if session is not None:
        try:
            session.after_fork_in_parent()
        except Exception as exc:
            warn(f"coroscope: could not resume after fork ({type(exc).__name__}: {exc})")


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    session = _session
    if session is None:
        return
    try:
        session.after_fork_in_child()
        _flush_at_multiprocessing_exit()
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
    Installing again replaces the running installation; if the new one cannot start, the
    running one stays.
    """
    config = Config.from_env(
        os.environ if environ is None else environ, output=output, locals=locals, **settings
    )
    return _install(config, tuple(processors))


def _install(config: Config, processors: tuple[Processor, ...], sink: Sink | None = None) -> bool:
    global _session
    with _lock:
        new = Session.build(config, processors, sink)  # nothing running changes if it fails
        old = _session
        try:
            started = _start_replacing(new, old)
        except BaseException:
            new.close(0.0)
            raise
        if not started:
            new.close(0.0)
            warn(tool_ids_taken_message())
            return False
        _session = new
        _register_process_hooks()
        if old is not None:
            _retire(old)
        return True


def _start_replacing(new: Session, old: Session | None) -> bool:
    """Start ``new`` in place of ``old`` (if any); if it cannot start, ``old`` goes on.

    ``old`` is stopped first: it gives back its tool id and its process-wide hooks (the
    never-awaited hook, the snapshot signal), which ``new`` takes.
    """
    if old is None:
        return new.start()
    old.stop()
    if new.start():
        return True
    old.start()
    return False


def _retire(old: Session, timeout: float | None = None) -> None:
    """Write what a stopped session holds and close its output; say if it had errors
    (unless it already said so, switching itself off)."""
    capture = old.capture
    old.close(timeout)
    first = capture.first_error
    if capture.errors and first is not None and not capture.switched_off:
        warn(
            f"coroscope: {capture.errors} internal errors during capture "
            f"(first: {type(first).__name__}: {first})"
        )


def uninstall(timeout: float | None = None) -> None:
    """Stop monitoring, write what is buffered (within ``timeout`` seconds, by default
    the configured flush timeout) and release everything.  Safe to call when not installed.
    """
    global _session
    with _lock:
        session, _session = _session, None
        if session is None:
            return
        session.stop()
        _retire(session, timeout)


def detach() -> Session | None:
    """Take the running session out, monitoring off, its records kept (for a while)."""
    global _session
    with _lock:
        session, _session = _session, None
        if session is not None:
            session.stop()
        return session


def reattach(session: Session | None) -> None:
    """Put back a session :func:`detach` took out, monitoring on again (its running
    tasks adopted); if another session was installed meanwhile, close it instead."""
    global _session
    if session is None:
        return
    with _lock:
        if _session is None and session.start():
            _session = session
            return
    session.close()


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


def set_mode(mode: str, seconds: float | None = None) -> None:
    """Switch the running installation to ``mode`` (``all``, ``slow``, ``watch`` or
    ``recorder``) without a restart; after ``seconds``, if given, back to the configured
    mode.  Writes a ``mode.changed`` record.  Raises ``RuntimeError`` when coroscope is not
    installed and ``ValueError`` for an unknown mode or a bad duration.
    """
    session = _session
    if session is None:
        raise RuntimeError("coroscope is not installed")
    session.set_mode(mode, seconds)


def dump(reason: str = "") -> int | None:
    """In ``recorder`` mode, write an incident now: the ``incident`` record (with
    ``reason``) and the ring's records not yet written.  Returns its ``incident_id``, or
    ``None`` when the rate limit suppressed it (counted) or coroscope is not installed.
    Raises ``RuntimeError`` in another mode.
    """
    session = _session
    if session is None:
        return None
    return session.dump(reason)


def is_installed() -> bool:
    """Whether coroscope is monitoring this process."""
    session = _session
    return session is not None and session.active


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
