"""The `coroscope run` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import COUNTDOWN, clean_env, joined, read_records


def _coroscope(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coroscope", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


class TestRun:
    """`coroscope run` monitors a script or module with no environment variable."""

    def test_script_with_args(self, tmp_path: Path) -> None:
        """A script runs as __main__ with its own argv, and its switches are logged."""
        script = tmp_path / "prog.py"
        script.write_text("import sys\nprint(sys.argv)\n" + COUNTDOWN)
        log = tmp_path / "out.log"
        result = _coroscope("run", "--output", str(log), str(script), "a", "--b")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == repr([str(script), "a", "--b"])
        records = read_records(log)
        assert [s["frames"][0]["locals"]["n"] for s in records if s["event"] == "suspend"] == [
            3,
            2,
            1,
        ]

    def test_module(self, tmp_path: Path) -> None:
        """-m runs a module found on sys.path, with locals off when asked."""
        (tmp_path / "progmod.py").write_text(COUNTDOWN)
        log = tmp_path / "out.log"
        result = _coroscope(
            "run", "--output", str(log), "--locals", "off", "-m", "progmod", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        records = [r for r in joined(read_records(log)) if r["event"] in ("suspend", "resume")]
        assert len(records) == 6
        assert all(f["locals"] is None for r in records for f in r["frames"])

    def test_exit_code_propagates(self, tmp_path: Path) -> None:
        """The program's exit status is the command's."""
        script = tmp_path / "prog.py"
        script.write_text("import sys\nsys.exit(4)\n")
        assert _coroscope("run", "--output", str(tmp_path / "x.log"), str(script)).returncode == 4

    def test_bad_option_value(self, tmp_path: Path) -> None:
        """A bad setting is refused before the program runs, with exit status 2."""
        script = tmp_path / "prog.py"
        script.write_text("print('ran')\n")
        result = _coroscope("run", "--buffer", "0", str(script))
        assert result.returncode == 2
        assert "buffer_size='0' is not valid" in result.stderr
        assert "ran" not in result.stdout

    def test_nothing_to_run(self) -> None:
        """Without a target the command says what it needs."""
        result = _coroscope("run")
        assert result.returncode == 2
        assert "give a script path or -m module" in result.stderr

    def test_any_setting_with_set(self, tmp_path: Path) -> None:
        """-s NAME=VALUE reaches any setting: slow mode with a tiny threshold logs the slow wait only."""
        script = tmp_path / "prog.py"
        script.write_text(
            "import asyncio\n"
            "async def main():\n"
            "    await asyncio.sleep(0)\n"
            "    fut = asyncio.get_running_loop().create_future()\n"
            "    asyncio.get_running_loop().call_later(0.05, fut.set_result, None)\n"
            "    await fut  # not a timer wait: slow by its length\n"
            "asyncio.run(main())\n"
        )
        log = tmp_path / "out.log"
        result = _coroscope(
            "run", "--output", str(log), "--mode", "slow", "-s", "slow_await_ms=20", str(script)
        )
        assert result.returncode == 0, result.stderr
        switches = [r for r in read_records(log) if r["event"] in ("suspend", "resume")]
        assert [r["event"] for r in switches] == ["resume"]
        assert switches[0]["waited_ms"] >= 20

    def test_unknown_setting(self, tmp_path: Path) -> None:
        """A misspelt -s name is refused with exit status 2."""
        script = tmp_path / "prog.py"
        script.write_text("print('ran')\n")
        result = _coroscope("run", "-s", "slow_stp_ms=5", str(script))
        assert result.returncode == 2
        assert "slow_stp_ms" in result.stderr


class TestBrokenInstall:
    """A tool that cannot be imported is an error, not a missing subcommand."""

    def test_failing_tool_import_is_loud(self) -> None:
        """With the trace tool unimportable, `coroscope --help` fails naming the import."""
        code = (
            "import sys\n"
            "sys.modules['coroscope.tools._trace_cli'] = None\n"
            "sys.modules['coroscope._trace'] = None\n"
            "from coroscope._cli import main\n"
            "main(['--help'])\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr
        assert "trace" in result.stderr
