"""The native core under valgrind's memcheck: no invalid access, no leak of its own.

A program that exercises every native path (the one the implementations are compared on)
runs under ``valgrind --leak-check=full`` with ``PYTHONMALLOC=malloc``, so that every
object is a malloc block valgrind follows.  The interpreter itself leaves blocks behind at
exit; only errors and lost blocks whose stack passes through ``_core.c`` are coroscope's.
(A leaked reference to a GC-tracked object stays reachable for memcheck through the
collector's lists: ``benchmarks/native_memory.py`` shows that memory stays flat.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env, read_records, requires_startup_files
from test_implementations import PROGRAM, needs_native

_RECORD = re.compile(r"^==\d+== +(\S.*)$")


def memcheck_findings(report: str) -> list[str]:
    """The error and loss records of a memcheck ``report`` that involve ``_core.c`` (a frame at one of its lines)."""
    findings, current = [], []
    for line in report.splitlines():
        found = _RECORD.match(line)
        if found is None:  # a blank ``==pid==`` line ends a record
            if current and any("(_core.c:" in frame for frame in current):
                findings.append("\n".join(current))
            current = []
        else:
            current.append(found.group(1))
    return findings


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@needs_native
@requires_startup_files
@pytest.mark.parametrize("mode", ["all", "slow"])
def test_no_invalid_access_or_leak(tmp_path: Path, mode: str) -> None:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    log = tmp_path / "records.log"
    env = clean_env(
        COROSCOPE="1",
        COROSCOPE_MODE=mode,
        COROSCOPE_OUTPUT=str(log),
        COROSCOPE_SLOW_STEP_MS="150",
        COROSCOPE_SLOW_AWAIT_MS="150",
        COROSCOPE_LOCALS_MAX_MS="1000",  # valgrind runs code about fifty times slower
        COROSCOPE_BLOCKED_MS="0",
        PYTHONMALLOC="malloc",
    )
    done = subprocess.run(
        [
            "valgrind",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--num-callers=40",
            sys.executable,
            "-W",
            "ignore",
            str(program),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ERROR SUMMARY" in done.stderr
    assert any(r["event"] == "task.done" for r in read_records(log))  # it did run
    assert memcheck_findings(done.stderr) == []


def test_findings_are_read_from_a_report() -> None:
    report = (
        "==7== 45 bytes in 1 blocks are definitely lost in loss record 1 of 2\n"
        "==7==    at 0x1: malloc (vg_replace_malloc.c:1)\n"
        "==7==    by 0x2: PyLong_FromVoidPtr (longobject.c:1)\n"
        "==7==    by 0x3: state_of (_core.c:165)\n"
        "==7== \n"
        "==7== 10 bytes in 1 blocks are definitely lost in loss record 2 of 2\n"
        "==7==    at 0x1: malloc (vg_replace_malloc.c:1)\n"
        "==7==    by 0x4: pyinit_core (pylifecycle.c:1)\n"
        "==7== \n"
    )
    assert len(memcheck_findings(report)) == 1
    assert "state_of (_core.c:165)" in memcheck_findings(report)[0]
