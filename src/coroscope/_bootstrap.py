"""Enabling coroscope from the environment (``COROSCOPE=1``), with no code change.

A bad value never stops the program: one message on stderr names the variable and what
it accepts, and the program runs on, unmonitored.
"""

from __future__ import annotations

import os

from ._config import ConfigError, is_enabled
from ._warn import warn

__all__ = ["start_from_environment"]


def start_from_environment() -> bool:
    """Install coroscope if ``COROSCOPE`` enables it; ``True`` if it is now monitoring."""
    environ = os.environ
    try:
        if not is_enabled(environ):
            return False
    except ValueError as exc:
        raw = environ.get("COROSCOPE")
        warn(f"coroscope: COROSCOPE={raw!r} is not valid ({exc}); coroscope is off")
        return False
    from ._api import install

    try:
        return install(environ=environ)
    except ConfigError as exc:
        for problem in exc.problems:
            warn(f"coroscope: {problem}; coroscope is off")
    except OSError as exc:
        warn(f"coroscope: cannot open the output ({exc}); coroscope is off")
    return False
