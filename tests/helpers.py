"""Shared helpers for tests that run programs in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

import coroscope

# The directory holding the coroscope package under test, so that a subprocess's
# start-up file imports this very code (it comes first on sys.path).
PACKAGE_PARENT = str(Path(coroscope.__file__).resolve().parent.parent)


def startup_files_installed() -> bool:
    """Whether this interpreter starts coroscope from COROSCOPE=1 (its .pth is installed)."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    return (purelib / "coroscope.pth").exists() and (purelib / "_coroscope_start.py").exists()


_skip_without_startup_files = pytest.mark.skipif(
    not startup_files_installed() and not os.environ.get("CI"),
    reason="coroscope is not pip-installed in this interpreter (the .ci scripts install it)",
)
#: The marks of a test that starts coroscope in a subprocess through COROSCOPE=1 alone.
#: Outside CI (where the .ci scripts install the package) it skips if the package is not
#: installed.
STARTUP_FILES_MARKS = [pytest.mark.startup_files, _skip_without_startup_files]


def requires_startup_files(test: Any) -> Any:
    """Mark ``test`` (a function or class) with :data:`STARTUP_FILES_MARKS`."""
    for mark in STARTUP_FILES_MARKS:
        test = mark(test)
    return test


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any COROSCOPE variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COROSCOPE")}
    env["PYTHONPATH"] = PACKAGE_PARENT
    env.update(extra)
    return env


def run_python(
    code: str,
    env: dict[str, str],
    *args: str,
    timeout: float = 60,
    cwd: str | Path | None = None,
    flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with this interpreter in a fresh process."""
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def read_records(path: Path) -> list[dict[str, Any]]:
    """Parse a JSON-lines log."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


COUNTDOWN = """
import asyncio

async def countdown(n):
    while n > 0:
        print(f"Count: {n}")
        await asyncio.sleep(0.01)
        n -= 1

asyncio.run(countdown(3))
"""


def joined(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with each ``resume`` that names its suspend (``suspend_seq``) given that
    suspend's ``frames`` and ``awaiting``, as a reader joins them."""
    by_seq = {r["seq"]: r for r in records if r.get("event") == "suspend"}
    out = []
    for record in records:
        suspend = by_seq.get(record.get("suspend_seq", -1))
        if record.get("event") == "resume" and suspend is not None:
            record = {**record, "frames": suspend["frames"]}
            record.setdefault("awaiting", suspend["awaiting"])
        out.append(record)
    return out


def shapes(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A frame's blocks as kind and line only (without what they hold)."""
    return [{"kind": b["kind"], "line": b["line"]} for b in blocks]
