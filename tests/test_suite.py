"""The test suite itself: tests that need the installed start-up files say so."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# The tests that start coroscope in a subprocess through COROSCOPE=1 alone.
NEED_STARTUP_FILES = [
    "test_fork.py::TestPreFork::test_children_write_their_own_records",
    "test_fork.py::TestPreFork::test_control_fork_after_first_record_warns",
    "test_fork.py::TestMultiprocessing::test_fork_context_children",
    "test_delivery.py::TestExit::test_everything_buffered_is_delivered",
    "test_delivery.py::TestExit::test_bounded_by_flush_timeout[stalled]",
    "test_delivery.py::TestExit::test_bounded_by_flush_timeout[refused]",
    "test_sinks.py::TestOutputSetting::test_bad_output_leaves_the_program_unmonitored",
    "test_sinks.py::TestConcurrentAppends::test_processes_append_whole_lines",
    "test_compat_tools.py::TestCoverage::test_coverage_and_records[COROSCOPE=1]",
]


class TestWithoutStartupFiles:
    """Where coroscope is importable but its .pth is not installed, those tests skip."""

    def test_they_skip_with_a_reason(self, tmp_path: Path) -> None:
        """In a virtual environment that sees this one's packages but not its .pth: skipped."""
        env_dir = tmp_path / "bare"
        venv.EnvBuilder(with_pip=False).create(env_dir)
        python = env_dir / "bin" / "python"
        purelib = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # A path line (not a site directory): this environment's .pth files are not read.
        (Path(purelib) / "here.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("COROSCOPE")}
        ids = [str(TESTS / t) for t in NEED_STARTUP_FILES]
        result = subprocess.run(
            [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *ids],
            capture_output=True,
            text=True,
            cwd=TESTS.parent,
            env=env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{len(ids)} skipped" in result.stdout, result.stdout
        assert "coroscope is not pip-installed" in result.stdout

    def test_the_list_is_every_such_test(self) -> None:
        """Every test module starting COROSCOPE=1 in a subprocess has its tests listed above."""
        for path in sorted(TESTS.glob("test_*.py")):
            text = path.read_text()
            if path.name in ("test_bootstrap.py", "test_suite.py"):
                continue
            uses = text.count('COROSCOPE="1"') + text.count('"COROSCOPE=1"')
            listed = sum(1 for t in NEED_STARTUP_FILES if t.startswith(path.name + "::"))
            if uses:
                assert listed, path.name


if sys.platform == "win32":  # pragma: no cover - venv layout differs
    pytestmark = pytest.mark.skip(reason="POSIX venv layout")
