"""Build of coroscope's optional native capture core, and of its start-up files.

Everything else is in ``pyproject.toml``.  The extension is optional: where it cannot be
compiled (no compiler, no Python headers), or when ``COROSCOPE_NO_EXTENSIONS`` is set at
build time, the install is pure Python and works the same, only slower per task switch.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

# Installed beside the package, at the top of site-packages: the .pth line that starts
# coroscope when COROSCOPE is set, and the start-up record it names.
START_UP_FILES = ("coroscope.pth", "coroscope.start")


class BuildWithStartUpFiles(build_py):
    def run(self) -> None:
        super().run()
        for name in START_UP_FILES:
            self.copy_file(os.path.join("src", name), os.path.join(self.build_lib, name))


def _extensions() -> list[Extension]:
    disabled = os.environ.get("COROSCOPE_NO_EXTENSIONS", "").strip().lower()
    if disabled in ("1", "true", "on", "yes") or sys.implementation.name != "cpython":
        return []
    args = ["/W3"] if sys.platform == "win32" else ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    return [
        Extension(
            "coroscope.capture._core",
            ["src/coroscope/capture/_core.c"],
            extra_compile_args=args,
            optional=True,  # a failed compile leaves a pure-Python install
        )
    ]


setup(ext_modules=_extensions(), cmdclass={"build_py": BuildWithStartUpFiles})
