"""COROSCOPE=1 is invisible to the host: start-up, imports, threads, warnings."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from helpers import COUNTDOWN, STARTUP_FILES_MARKS, clean_env, read_records, run_python

pytestmark = STARTUP_FILES_MARKS


def _on(log: Path, **extra: str) -> dict[str, str]:
    return clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log), **extra)


class TestStartsWithAsyncio:
    """coroscope starts when asyncio is first imported, and not before."""

    def test_nothing_of_coroscope_without_asyncio(self, tmp_path: Path) -> None:
        """A process that never imports asyncio imports only the start-up module."""
        code = "import sys; print(sorted(m for m in sys.modules if 'coroscope' in m))"
        result = run_python(code, _on(tmp_path / "x.log"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "['_coroscope_start']"
        assert not (tmp_path / "x.log").exists()

    def test_first_task_seen_eager_included(self, tmp_path: Path) -> None:
        """The very first task of the program is captured, an eager one too."""
        log = tmp_path / "x.log"
        code = """
            import asyncio
            async def first():
                await asyncio.sleep(0)
            async def main():
                asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
                await asyncio.create_task(first(), name="eager")
            asyncio.run(main(), debug=False)
        """
        result = run_python(code, _on(log))
        assert result.returncode == 0, result.stderr
        suspends = [r for r in read_records(log) if r["event"] == "suspend"]
        # The eager task suspends first (named only after its first step), then Task-1.
        assert [r["frames"][0]["function"] for r in suspends] == ["first", "main"]
        assert suspends[1]["task"]["name"] == "Task-1"

    def test_coroscope_imported_first(self, tmp_path: Path) -> None:
        """A program that imports coroscope itself (which imports asyncio) is monitored."""
        code = "import coroscope, sys; print(coroscope.is_installed())"
        result = run_python(code, _on(tmp_path / "x.log"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "True" and result.stderr == ""

    def test_asyncio_is_left_as_it_was_imported(self, tmp_path: Path) -> None:
        """asyncio's spec and loader are the interpreter's; the finder is gone."""
        code = """
            import sys, asyncio, importlib.machinery
            assert type(asyncio.__spec__.loader) is importlib.machinery.SourceFileLoader
            assert asyncio.__loader__ is asyncio.__spec__.loader
            assert not [f for f in sys.meta_path if 'coroscope' in type(f).__module__]
            import coroscope
            print(coroscope.is_installed())
        """
        result = run_python(code, _on(tmp_path / "x.log"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "True"


class TestHostCode:
    """The host's own code behaves as without coroscope."""

    def test_walking_sys_modules_with_hasattr(self, tmp_path: Path) -> None:
        """Iterating sys.modules while calling hasattr on each module (as test runners and
        warning-registry cleaners do), with coroscope's threads busy: no RuntimeError."""
        code = """
            import asyncio, sys, time
            async def churn():
                for _ in range(500):
                    await asyncio.sleep(0)
            asyncio.run(churn())
            for _ in range(20):
                for module in sys.modules.values():
                    hasattr(module, "__warningregistry__")
                    hasattr(module, "no_such_attribute_at_all")
                time.sleep(0.005)
            print("ok")
        """
        result = run_python(code, _on(tmp_path / "x.log"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"

    def test_no_import_on_coroscopes_threads(self, tmp_path: Path) -> None:
        """coroscope's threads import nothing while the program runs (no sys.modules change
        from a thread the program does not know), whatever the output."""
        probe = """
            import asyncio, sys, threading, time
            seen = []
            class Watch:
                def find_spec(self, name, path=None, target=None):
                    if threading.get_ident() != main:
                        seen.append(name)
                    return None
            main = threading.get_ident()
            import coroscope  # the start-up hook installed it with asyncio
            sys.meta_path.insert(0, Watch())
            async def worker(i):
                for n in range(50):
                    await asyncio.sleep(0.001)
            async def main_():
                await asyncio.gather(*(worker(i) for i in range(10)))
                time.sleep(0.3)  # a blocked loop: the watchdog reports it
                coroscope.snapshot()
                await asyncio.sleep(0.05)
            asyncio.run(main_())
            coroscope.flush(5)
            print(sorted(set(seen)))
        """
        outputs = [str(tmp_path / "x.log"), "stderr"]
        for output in outputs:
            env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=output, COROSCOPE_BLOCKED_MS="100")
            result = run_python(probe, env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip().splitlines()[-1] == "[]", (output, result.stdout)


_WARNS = """
import asyncio, gc

async def forgotten():
    pass

def first():
    forgotten()  # line 8
    gc.collect()

def second():
    forgotten()  # line 12
    gc.collect()

first()
second()
first()
"""


class TestWarnings:
    """Python's "coroutine ... was never awaited" is the same with and without coroscope."""

    @pytest.mark.parametrize(
        "options",
        [("-W", "default"), ("-W", "error::RuntimeWarning:__main__"), ("-W", "ignore")],
        ids=["default", "error-main", "ignore"],
    )
    def test_same_text_place_and_filters(self, tmp_path: Path, options: tuple[str, ...]) -> None:
        """Same stderr (text, file, line, once per line), same filter matching."""
        script = tmp_path / "prog.py"
        script.write_text(textwrap.dedent(_WARNS))
        log = tmp_path / "x.log"
        runs = [
            run_python(f"exec(open({str(script)!r}).read())", env, flags=options)
            for env in (clean_env(), _on(log))
        ]
        plain, monitored = ((r.returncode, re.sub(r"0x[0-9a-f]+", "0x?", r.stderr)) for r in runs)
        assert monitored == plain
        if options[1] == "default":
            assert plain[1].count("was never awaited") == 2  # two lines, once each
            assert ":8: RuntimeWarning" in plain[1] and ":12: RuntimeWarning" in plain[1]
        records = [r for r in read_records(log) if r["event"] == "coroutine.never_awaited"]
        assert len(records) == 3  # the record is written whatever the filters say


class TestCountdown:
    """The README's program, unchanged, is monitored."""

    def test_countdown(self, tmp_path: Path) -> None:
        """Three suspends with n=3,2,1."""
        log = tmp_path / "x.log"
        result = run_python(COUNTDOWN, _on(log))
        assert result.returncode == 0, result.stderr
        suspends = [r for r in read_records(log) if r["event"] == "suspend"]
        assert [s["frames"][0]["locals"]["n"] for s in suspends] == [3, 2, 1]
