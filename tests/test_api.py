"""The public functions: installing again, pausing for capture_records, errors at uninstall."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

import coroscope
from coroscope.capture import TOOL_IDS
from coroscope.testing import capture_records
from helpers import read_records


async def _switches(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def _suspends(path: Path) -> int:
    return sum(1 for r in read_records(path) if r["event"] == "suspend")


class TestInstallAgain:
    """A second install() either replaces the first whole, or leaves it running."""

    def test_unopenable_output_keeps_the_running_installation(self, tmp_path: Path) -> None:
        """An OSError for the new output leaves the old installation monitoring, as it was."""
        log = tmp_path / "first.log"
        assert coroscope.install(output=str(log), environ={})
        try:
            asyncio.run(_switches(3))
            with pytest.raises(OSError):
                coroscope.install(output=str(tmp_path / "missing-dir" / "x.log"), environ={})
            assert coroscope.is_installed()
            config = coroscope.current_config()
            assert config is not None and config.output == str(log)
            asyncio.run(_switches(4))
        finally:
            coroscope.uninstall()
        assert _suspends(log) == 7

    def test_replacement_takes_over(self, tmp_path: Path) -> None:
        """A good second install() writes to its own output from then on, the first is closed."""
        first, second = tmp_path / "1.log", tmp_path / "2.log"
        assert coroscope.install(output=str(first), environ={})
        try:
            asyncio.run(_switches(2))
            assert coroscope.install(output=str(second), environ={})
            asyncio.run(_switches(5))
        finally:
            coroscope.uninstall()
        assert (_suspends(first), _suspends(second)) == (2, 5)

    def test_replacement_when_only_the_running_id_is_free(self, tmp_path: Path) -> None:
        """When other tools hold every other id, the new installation takes the old one's."""
        log = tmp_path / "first.log"
        assert coroscope.install(output=str(log), environ={})
        taken = [i for i in TOOL_IDS if sys_monitoring().get_tool(i) is None]
        try:
            for tool_id in taken:
                sys_monitoring().use_tool_id(tool_id, "other")
            assert coroscope.install(output=str(tmp_path / "2.log"), environ={}) is True
            asyncio.run(_switches(2))
        finally:
            for tool_id in taken:
                sys_monitoring().free_tool_id(tool_id)
            coroscope.uninstall()
        assert _suspends(tmp_path / "2.log") == 2


def sys_monitoring() -> Any:
    return sys.monitoring


class TestCaptureRecordsPauses:
    """coroscope.testing.capture_records() gives a running installation back afterwards."""

    def test_running_installation_resumes(self, tmp_path: Path) -> None:
        """Records before and after the block go to the installation; inside, to the test."""
        log = tmp_path / "app.log"
        assert coroscope.install(output=str(log), environ={})
        try:
            asyncio.run(_switches(2))
            with capture_records() as records:
                asyncio.run(_switches(3))
            assert coroscope.is_installed()
            config = coroscope.current_config()
            assert config is not None and config.output == str(log)
            asyncio.run(_switches(4))
        finally:
            coroscope.uninstall()
        assert sum(1 for r in records if r["event"] == "suspend") == 3
        assert _suspends(log) == 6


class TestErrorsAtUninstall:
    """Internal errors that did not switch coroscope off are counted when it stops."""

    def test_count_is_said(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Three failing captures (fewer than the switch-off limit): one line at uninstall."""
        from coroscope.capture._chain import ChainCapture

        real = ChainCapture.suspended
        calls = {"n": 0}

        def flaky(self: ChainCapture, root: object, value: object) -> object:
            calls["n"] += 1
            if calls["n"] <= 3:
                raise RuntimeError("flaky capture")
            return real(self, root, value)

        monkeypatch.setattr(ChainCapture, "suspended", flaky)
        with capture_records():
            asyncio.run(_switches(5))
        err = capsys.readouterr().err
        assert "coroscope: 3 internal errors during capture" in err
        assert "RuntimeError: flaky capture" in err
        assert "switched off" not in err
