"""coroscope: see where every asyncio task stopped, what it awaits, and with which locals.

Public API::

    coroscope.install(output="stderr", locals="safe")  # or COROSCOPE=1 in the environment
    coroscope.uninstall()
    with coroscope.monitoring(output="switches.log"):
        ...
    coroscope.set_mode("all", seconds=60)  # then back to the configured mode
    coroscope.dump("why")  # recorder mode: write what led up to now
"""

from __future__ import annotations

from ._api import (
    current_config,
    dump,
    flush,
    install,
    is_installed,
    monitoring,
    set_mode,
    snapshot,
    uninstall,
)
from ._config import Config, ConfigError
from ._version import __version__

__all__ = [
    "Config",
    "ConfigError",
    "__version__",
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

# With COROSCOPE=1, asyncio's first import installs coroscope; when that import came from
# this very package, the installation waited for the package to be complete: now it is.
_start = __import__("sys").modules.get("_coroscope_start")
if _start is not None:
    _start.run_deferred()
del _start
