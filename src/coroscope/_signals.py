"""A signal handler coroscope sets only where the host has none, and gives back."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from ._warn import warn

__all__ = ["SignalHook"]


class SignalHook:
    """Calls ``action()`` on ``SIG<name>``; installed only on the main thread, only if the
    signal has no handler yet (else it says so once and stays off)."""

    __slots__ = ("_action", "_previous", "signum")

    def __init__(self, action: Callable[[], object]) -> None:
        self._action = action
        self.signum: int | None = None
        self._previous: Any = None

    def install(self, name: str, what: str, instead: str = "") -> bool:
        """Take ``SIG<name>`` (``off``: nothing) for ``what`` the signal does; ``instead``
        ends the message said when the signal is taken."""
        if name == "off" or self.signum is not None:
            return False
        signum = getattr(signal, f"SIG{name}", None)
        if signum is None or threading.current_thread() is not threading.main_thread():
            return False
        current = signal.getsignal(signum)
        if current is not signal.SIG_DFL:
            warn(
                f"coroscope: SIG{name} already has a handler; {what} on that signal are off"
                + instead
            )
            return False
        signal.signal(signum, self._handle)
        self.signum, self._previous = signum, current
        return True

    def _handle(self, signum: int, frame: object) -> None:
        try:
            self._action()
        except Exception as exc:  # in the host's main thread: never raise there
            warn(f"coroscope: signal handler failed ({type(exc).__name__}: {exc})")

    def uninstall(self) -> None:
        """Give the signal back, if it is still ours."""
        signum, self.signum = self.signum, None
        if signum is None:
            return
        try:
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, self._previous)
        except ValueError:  # not the main thread
            pass
