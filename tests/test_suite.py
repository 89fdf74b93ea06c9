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
        marked = _marked()
        assert len(marked) >= 8
        result = subprocess.run(
            [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "-m", "startup_files"],
            capture_output=True,
            text=True,
            cwd=TESTS.parent,
            env=env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{len(marked)} skipped" in result.stdout, result.stdout
        assert "coroscope is not pip-installed" in result.stdout

    def test_every_such_test_is_marked(self) -> None:
        """Every test module starting COROSCOPE=1 in a subprocess has marked tests."""
        marked = {nodeid.split("::", 1)[0] for nodeid in _marked()}
        for path in sorted(TESTS.rglob("test_*.py")):
            if path.name == "test_suite.py":
                continue
            text = path.read_text()
            if 'COROSCOPE="1"' in text or '"COROSCOPE=1"' in text:
                assert str(path.relative_to(TESTS.parent)) in marked, path


def _marked() -> list[str]:
    """The node ids of the tests marked ``startup_files``."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--co",
            "-m",
            "startup_files",
        ],
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
        timeout=300,
        check=False,
    )
    return [line for line in result.stdout.splitlines() if "::" in line]


if sys.platform == "win32":  # pragma: no cover - venv layout differs
    pytestmark = pytest.mark.skip(reason="POSIX venv layout")
