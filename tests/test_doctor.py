"""`coroscope doctor`: the checks a person deploying coroscope wants."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import orjson

from helpers import clean_env


def _doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coroscope", "doctor", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestDoctor:
    """What it reports, and when it says something is wrong."""

    def test_healthy(self, tmp_path: Path) -> None:
        """A writable file output and good settings: exit 0, every fact, each setting's source."""
        log = tmp_path / "out.log"
        result = _doctor("--json", "--no-timing", COROSCOPE_OUTPUT=str(log), COROSCOPE_MODE="slow")
        assert result.returncode == 0, result.stdout + result.stderr
        facts = orjson.loads(result.stdout)
        assert facts["problems"] == []
        assert facts["implementation"] in facts["implementations"]
        assert facts["tool_id"] in (3, 4)
        assert facts["output"] == str(log) and facts["output_reachable"] is True
        settings = facts["settings"]
        assert settings["mode"] == {
            "value": "slow",
            "from": "$COROSCOPE_MODE",
            "env": "COROSCOPE_MODE",
        }
        assert settings["buffer_size"]["from"] == "default"
        assert not log.exists()  # checked, not created

    def test_explicit_setting(self) -> None:
        """-s NAME=VALUE is an argument, and says so."""
        result = _doctor("--json", "--no-timing", "-s", "sample=0.5")
        facts = orjson.loads(result.stdout)
        assert facts["settings"]["sample"] == {
            "value": 0.5,
            "from": "argument",
            "env": "COROSCOPE_SAMPLE",
        }

    def test_bad_setting(self) -> None:
        """A bad value is a problem naming the variable: exit 1."""
        result = _doctor("--no-timing", COROSCOPE_BUFFER="0")
        assert result.returncode == 1
        assert "COROSCOPE_BUFFER='0' is not valid" in result.stdout

    def test_unreachable_output(self) -> None:
        """A TCP output nobody listens on is a problem: exit 1."""
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        result = _doctor("--no-timing", COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{port}")
        assert result.returncode == 1
        assert f"tcp://127.0.0.1:{port} cannot be reached" in result.stdout

    def test_unwritable_file(self, tmp_path: Path) -> None:
        """A file in a folder that does not exist is a problem."""
        result = _doctor("--no-timing", COROSCOPE_OUTPUT=str(tmp_path / "no" / "x.log"))
        assert result.returncode == 1
        assert "cannot be written" in result.stdout

    def test_startup_cost_measured(self) -> None:
        """With timing, it measures what COROSCOPE=1 adds to start-up, in fresh interpreters."""
        result = _doctor("--json", "--runs", "1")
        assert result.returncode == 0, result.stdout + result.stderr
        startup = orjson.loads(result.stdout)["startup"]
        assert startup["pass_ms"] > 0 and startup["asyncio_ms"] > startup["pass_ms"]
        assert set(startup) == {"pass_ms", "pass_added_ms", "asyncio_ms", "asyncio_added_ms"}

    def test_text_report(self) -> None:
        """The plain report names the implementation, the tool id and the settings."""
        result = _doctor("--no-timing")
        assert result.returncode == 0, result.stdout
        for text in ("implementation", "tool id", "COROSCOPE_MODE", "no problems found"):
            assert text in result.stdout
