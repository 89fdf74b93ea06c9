"""Enabling coroscope from the environment alone, in real subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import COUNTDOWN, STARTUP_FILES_MARKS, clean_env, read_records, run_python

pytestmark = STARTUP_FILES_MARKS


class TestEnable:
    """COROSCOPE=1 monitors a program that knows nothing of coroscope."""

    def test_countdown_logged_with_env_var_only(self, tmp_path: Path) -> None:
        """The README's countdown, run with COROSCOPE=1, logs three suspends with n=3,2,1."""
        log = tmp_path / "switches.log"
        result = run_python(COUNTDOWN, clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log)))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["Count: 3", "Count: 2", "Count: 1"]
        records = read_records(log)
        suspends = [r for r in records if r["event"] == "suspend"]
        assert [s["frames"][0]["locals"]["n"] for s in suspends] == [3, 2, 1]
        assert [r["event"] for r in records if r["event"] != "task.done"] == [
            "suspend",
            "resume",
        ] * 3

    @pytest.mark.parametrize("value", ["true", "ON", "yes"])
    def test_other_enabling_values(self, tmp_path: Path, value: str) -> None:
        """true/on/yes (any case) enable coroscope too."""
        log = tmp_path / "switches.log"
        result = run_python(COUNTDOWN, clean_env(COROSCOPE=value, COROSCOPE_OUTPUT=str(log)))
        assert result.returncode == 0, result.stderr
        assert sum(r["event"] in ("suspend", "resume") for r in read_records(log)) == 6

    def test_default_output_is_stderr(self) -> None:
        """Without COROSCOPE_OUTPUT the JSON lines go to stderr, the program's stdout is untouched."""
        result = run_python(COUNTDOWN, clean_env(COROSCOPE="1"))
        assert result.returncode == 0
        assert result.stdout.splitlines() == ["Count: 3", "Count: 2", "Count: 1"]
        lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
        assert len(lines) == 7  # three suspends, three resumes, the task's end
        assert '"event":"suspend"' in lines[0]

    def test_stdout_output(self) -> None:
        """COROSCOPE_OUTPUT=stdout writes whole JSON lines to stdout."""
        result = run_python(COUNTDOWN, clean_env(COROSCOPE="1", COROSCOPE_OUTPUT="stdout"))
        assert result.returncode == 0
        json_lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        assert len(json_lines) == 7


class TestDisabled:
    """Without COROSCOPE (or with it off) nothing of coroscope is loaded."""

    @pytest.mark.parametrize("value", [None, "", "0", "off", "false", "no"])
    def test_nothing_imported(self, value: str | None) -> None:
        """The start-up line imports nothing when coroscope is not enabled."""
        env = clean_env() if value is None else clean_env(COROSCOPE=value)
        code = "import sys; print(sorted(m for m in sys.modules if 'coroscope' in m))"
        result = run_python(code, env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
        assert result.stderr == ""

    def test_isolated_mode_ignores_environment(self, tmp_path: Path) -> None:
        """`python -I` (or -E) ignores COROSCOPE, as it ignores every PYTHON* variable."""
        log = tmp_path / "switches.log"
        result = run_python(
            COUNTDOWN, clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log)), flags=("-E",)
        )
        assert result.returncode == 0
        assert not log.exists()


class TestBadSettings:
    """A bad setting gives one clear message and an unharmed, unmonitored run."""

    @pytest.mark.parametrize(
        ("env", "variable", "accepted"),
        [
            ({"COROSCOPE": "maybe"}, "COROSCOPE", "1, true, on, yes"),
            ({"COROSCOPE": "1", "COROSCOPE_LOCALS": "loud"}, "COROSCOPE_LOCALS", "safe, off"),
            ({"COROSCOPE": "1", "COROSCOPE_BUFFER": "-5"}, "COROSCOPE_BUFFER", "whole number"),
            (
                {"COROSCOPE": "1", "COROSCOPE_FLUSH_TIMEOUT": "soon"},
                "COROSCOPE_FLUSH_TIMEOUT",
                "seconds",
            ),
        ],
    )
    def test_message_and_unharmed_run(
        self, env: dict[str, str], variable: str, accepted: str
    ) -> None:
        """The message names the variable and what it accepts; the program's output is intact."""
        result = run_python(COUNTDOWN, clean_env(**env))
        assert result.returncode == 0
        assert result.stdout.splitlines() == ["Count: 3", "Count: 2", "Count: 1"]
        messages = result.stderr.splitlines()
        assert len(messages) == 1, result.stderr
        assert messages[0].startswith(f"coroscope: {variable}=")
        assert accepted in messages[0]
        assert "coroscope is off" in messages[0]

    def test_unwritable_output(self, tmp_path: Path) -> None:
        """An output file that cannot be opened is reported once; the program runs on."""
        bad = tmp_path / "missing-dir" / "x.log"
        result = run_python(COUNTDOWN, clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(bad)))
        assert result.returncode == 0
        assert result.stdout.splitlines() == ["Count: 3", "Count: 2", "Count: 1"]
        assert "cannot open the output" in result.stderr
        assert str(bad) in result.stderr


class TestExit:
    """Records still buffered at exit are written."""

    def test_burst_then_exit_is_flushed(self, tmp_path: Path) -> None:
        """Thousands of switches right before exit all reach the file, with dense seq numbers."""
        log = tmp_path / "switches.log"
        code = """
            import asyncio, os
            async def spin():
                for _ in range(2000):
                    await asyncio.sleep(0)
            asyncio.run(spin())
        """
        result = run_python(code, clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log)))
        assert result.returncode == 0, result.stderr
        records = read_records(log)
        assert sum(r["event"] in ("suspend", "resume") for r in records) == 4000
        assert sorted(r["seq"] for r in records) == list(range(len(records)))

    def test_exit_via_os_exit_paths_do_not_hang(self, tmp_path: Path) -> None:
        """sys.exit() from inside a coroutine still flushes and exits with its code."""
        log = tmp_path / "switches.log"
        code = """
            import asyncio, sys
            async def main():
                await asyncio.sleep(0)
                sys.exit(3)
            asyncio.run(main())
        """
        result = run_python(code, clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log)))
        assert result.returncode == 3
        assert [r["event"] for r in read_records(log)] == ["suspend", "resume", "task.done"]
