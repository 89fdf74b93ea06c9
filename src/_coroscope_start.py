"""Start coroscope at interpreter start-up when ``COROSCOPE`` asks for it.

Run by the ``coroscope.pth`` line (and the PEP 829 ``coroscope.start`` entry point).  When
coroscope is not enabled this costs one environment lookup: nothing else is imported.
"""

import contextlib
import os
import sys

_OFF = ("", "0", "false", "off", "no")
_started = False


def start() -> None:
    """Install coroscope if ``COROSCOPE`` is set to an enabling value; never raise.

    Runs at most once per process: ``site`` may process the same ``.pth`` twice (a
    virtual environment's ``lib64`` link to ``lib`` makes its site-packages appear twice).
    """
    global _started
    if _started:
        return
    _started = True
    value = os.environ.get("COROSCOPE", "").strip().lower()
    if value in _OFF or sys.flags.ignore_environment:
        return
    try:
        from coroscope._bootstrap import start_from_environment

        start_from_environment()
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            sys.stderr.write(f"coroscope: could not start ({type(exc).__name__}: {exc})\n")
