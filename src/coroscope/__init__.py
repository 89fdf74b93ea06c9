"""coroscope: see where every asyncio task stopped, what it awaits, and with which locals.

Public API::

    coroscope.install(output="stderr", locals="safe")  # or COROSCOPE=1 in the environment
    coroscope.uninstall()
    with coroscope.monitoring(output="switches.log"):
        ...
"""

from __future__ import annotations

from ._api import (
    current_config,
    flush,
    install,
    is_installed,
    monitoring,
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
    "flush",
    "install",
    "is_installed",
    "monitoring",
    "snapshot",
    "uninstall",
]
