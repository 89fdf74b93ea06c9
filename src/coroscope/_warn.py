"""The one way coroscope talks to a person: a line on stderr that never raises."""

from __future__ import annotations

import sys

__all__ = ["warn"]


def warn(message: str) -> None:
    """Write ``message`` as one line on stderr; never raise."""
    try:
        stream = sys.stderr or sys.__stderr__
        if stream is not None:
            stream.write(message.rstrip("\n") + "\n")
            stream.flush()
    except Exception:
        pass
