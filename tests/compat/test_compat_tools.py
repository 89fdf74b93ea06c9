"""Beside other sys.monitoring tools: coverage, cProfile, a debugger, busy ids, restarts; and
install/uninstall cycles that leave nothing behind."""

from __future__ import annotations

import _thread
import asyncio
import cProfile
import gc
import pstats
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import coroscope
from coroscope import _api as _install
from coroscope.capture import TOOL_IDS
from coroscope.testing import capture_records
from helpers import STARTUP_FILES_MARKS, clean_env, joined, read_records

_mon = sys.monitoring
_E = _mon.events
QUIET = {"task_done": False, "blocked_ms": 0}


def _signature(records: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Per task (keyed by root function and order of first appearance): event, functions, lines, locals."""
    ids: dict[int, str] = {}
    out: dict[str, list[tuple[Any, ...]]] = {}
    for r in joined(records):
        if r["event"] not in ("suspend", "resume"):
            continue
        root = r["frames"][0]["function"]
        key = ids.setdefault(
            r["task"]["id"], f"{root}#{sum(k.startswith(root + '#') for k in out)}"
        )
        out.setdefault(key, []).append(
            (r["event"], tuple((f["function"], f["line"], str(f["locals"])) for f in r["frames"]))
        )
    return out


def _helper(x: int) -> int:
    return x + 1


async def _leaf(i: int) -> int:
    leaf_local = _helper(i)
    await asyncio.sleep(0)
    return leaf_local


async def _worker(n: int) -> int:
    total = 0
    for i in range(n):
        total += await _leaf(i)
    return total


async def _program(tasks: int = 5, n: int = 4) -> int:
    results = await asyncio.gather(*(_worker(n) for _ in range(tasks)))
    return sum(results)


def _expected(tasks: int = 5, n: int = 4) -> int:
    return tasks * sum(i + 1 for i in range(n))


# -- coverage.py ----------------------------------------------------------------------------

_COVERED_SCRIPT = """\
import asyncio
import sys
{install}

async def leaf(n):
    leaf_local = n + 100
    await asyncio.sleep(0.001)
    return leaf_local


async def main():
    total = 0
    for n in range(3):
        total += await leaf(n)
    if total < 0:
        print("never")
    return total


print(asyncio.run(main()), sys.monitoring.get_tool(1), sys.monitoring.get_tool(3))
"""

# Start coroscope as its .pth line does (COROSCOPE=1 decides), then run coverage's CLI.
_START_THEN_COVERAGE = (
    "import sys, _coroscope_start; _coroscope_start.start(); "
    "from coverage.cmdline import main; sys.argv[0] = 'coverage'; sys.exit(main())"
)


class TestCoverage:
    """coverage.py measuring with sys.monitoring (COVERAGE_CORE=sysmon, tool id 1)."""

    @pytest.mark.parametrize(
        "how",
        [
            "none",
            pytest.param("COROSCOPE=1", marks=STARTUP_FILES_MARKS),
            "install() under coverage",
        ],
    )
    def test_coverage_and_records(self, tmp_path: Path, how: str) -> None:
        """Coverage data is the same with and without coroscope; coroscope's records are complete."""
        pytest.importorskip("coverage")
        import coverage

        log = tmp_path / "switches.log"
        install = (
            f"import coroscope; coroscope.install(output={str(log)!r})"
            if how.startswith("install")
            else ""
        )
        script = tmp_path / "covered.py"
        script.write_text(_COVERED_SCRIPT.format(install=install))
        data_file = tmp_path / ".coverage"
        env = clean_env(COVERAGE_CORE="sysmon", COROSCOPE_OUTPUT=str(log))
        if how == "COROSCOPE=1":
            env["COROSCOPE"] = "1"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _START_THEN_COVERAGE,
                "run",
                f"--data-file={data_file}",
                str(script),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "coroscope" not in result.stderr
        monitored = how != "none"
        assert result.stdout.split() == ["303", "coverage.py", "coroscope" if monitored else "None"]
        cov = coverage.Coverage(data_file=str(data_file))
        cov.load()
        lines = set(cov.get_data().lines(str(script)) or ())
        source = script.read_text().splitlines()
        never = source.index('        print("never")') + 1
        body = {
            source.index("    leaf_local = n + 100") + 1,
            source.index("    return leaf_local") + 1,
        }
        assert body <= lines
        assert never not in lines
        assert len(lines) == len({i + 1 for i, text in enumerate(source) if text.strip()}) - 1
        records = read_records(log)
        if not monitored:
            assert records == []
            return
        suspends = [r for r in records if r["event"] == "suspend"]
        assert [s["frames"][-1]["locals"] for s in suspends] == [
            {"n": n, "leaf_local": n + 100} for n in range(3)
        ]
        assert [r["event"] for r in records if r["event"] != "task.done"] == [
            "suspend",
            "resume",
        ] * 3


# -- profilers and debuggers ----------------------------------------------------------------


class TestProfilerAndDebugger:
    """cProfile (tool id 2 on 3.12+) and a debugger on tool id 0, at the same time as coroscope."""

    def test_cprofile(self) -> None:
        """cProfile profiles the program and coroscope records the same switches as without it."""
        with capture_records(**QUIET) as alone:
            assert asyncio.run(_program()) == _expected()
        profile = cProfile.Profile()
        with capture_records(**QUIET) as together:
            profile.enable()
            try:
                assert _mon.get_tool(2) == "cProfile"
                assert asyncio.run(_program()) == _expected()
            finally:
                profile.disable()
        assert _signature(together) == _signature(alone)
        assert len(_signature(alone)) == 6
        stats = pstats.Stats(profile)
        called = {
            func[2]: counts[1]
            for func, counts in stats.stats.items()  # type: ignore[attr-defined]
        }
        assert called["_helper"] == 20  # every call, though coroscope disabled that location
        assert called["_worker"] >= 5
        assert called["_leaf"] >= 20

    def test_debugger_on_tool_id_0(self) -> None:
        """A debugger with LINE events on a coroutine and global PY_START sees everything; coroscope too."""
        with capture_records(**QUIET) as alone:
            assert asyncio.run(_program()) == _expected()
        lines: list[int] = []
        starts: dict[str, int] = {}

        def on_line(code: Any, line: int) -> None:
            lines.append(line)

        def on_start(code: Any, offset: int) -> None:
            starts[code.co_name] = starts.get(code.co_name, 0) + 1

        _mon.use_tool_id(0, "test-debugger")
        try:
            _mon.register_callback(0, _E.LINE, on_line)
            _mon.register_callback(0, _E.PY_START, on_start)
            _mon.set_local_events(0, _leaf.__code__, _E.LINE)
            _mon.set_events(0, _E.PY_START)
            with capture_records(**QUIET) as together:
                assert asyncio.run(_program()) == _expected()
        finally:
            _mon.set_events(0, 0)
            _mon.set_local_events(0, _leaf.__code__, 0)
            _mon.register_callback(0, _E.LINE, None)
            _mon.register_callback(0, _E.PY_START, None)
            _mon.free_tool_id(0)
        assert _signature(together) == _signature(alone)
        first = _leaf.__code__.co_firstlineno
        # 20 calls, each running its three lines once (gather interleaves the five tasks).
        assert Counter(lines) == {first + 1: 20, first + 2: 20, first + 3: 20}
        assert starts["_helper"] == 20  # coroscope's DISABLE is its own, not the debugger's
        assert starts["_leaf"] == 20


# -- busy tool ids --------------------------------------------------------------------------


class _OtherTool:
    """Another sys.monitoring tool, with its own callbacks and events on."""

    def on_start(self, code: Any, offset: int) -> None:
        if code is _helper.__code__:
            self.starts += 1

    def __init__(self, ids: tuple[int, ...], restart: bool = True) -> None:
        self.ids = ids
        self.starts = 0
        self.restart = restart

    def __enter__(self) -> _OtherTool:
        for tool_id in self.ids:
            _mon.use_tool_id(tool_id, "other-tool")
            _mon.register_callback(tool_id, _E.PY_START, self.on_start)
            _mon.set_events(tool_id, _E.PY_START | _E.PY_YIELD)
        if self.restart:
            _mon.restart_events()  # as coverage.py does when it starts
        return self

    def __exit__(self, *exc: object) -> None:
        for tool_id in self.ids:
            _mon.set_events(tool_id, 0)
            _mon.register_callback(tool_id, _E.PY_START, None)
            _mon.free_tool_id(tool_id)

    def intact(self) -> bool:
        return all(
            _mon.get_tool(i) == "other-tool" and _mon.get_events(i) == _E.PY_START | _E.PY_YIELD
            for i in self.ids
        )


class TestBusyToolIds:
    """Another tool holding coroscope's ids keeps them, events and callbacks untouched."""

    def test_ids_3_and_4_taken_with_events_on(self, capsys: pytest.CaptureFixture[str]) -> None:
        """install() returns False with one clear message; the other tool keeps working; uninstall() touches nothing."""
        threads_before = {t.name for t in threading.enumerate()}
        with _OtherTool(TOOL_IDS) as other:
            assert coroscope.install(output="stderr", environ={}) is False
            assert not coroscope.is_installed()
            asyncio.run(_program())
            coroscope.uninstall()
            assert other.intact()
            assert other.starts == 2 * 20  # both ids saw every call
            assert {t.name for t in threading.enumerate()} == threads_before
        err = capsys.readouterr().err
        assert err.count("coroscope:") == 1
        assert "tool ids 3 and 4 are both in use by other tools; coroscope is off" in err

    def test_neighbour_on_id_4_survives_uninstall(self) -> None:
        """coroscope on id 3 and another tool on id 4: uninstalling coroscope leaves id 4 as it was."""
        with capture_records(**QUIET) as records, _OtherTool((4,)) as other:
            assert _mon.get_tool(3) == "coroscope"
            assert asyncio.run(_program()) == _expected()
            coroscope.uninstall()
            assert _mon.get_tool(3) is None
            assert other.intact()
            assert other.starts == 20
            asyncio.run(_program())
            assert other.starts == 40
        assert len(_signature(records)) == 6

    def test_next_tool_on_the_same_id_sees_every_event(self) -> None:
        """A tool that takes id 3 after coroscope uninstalled sees every call, including those coroscope disabled."""
        with capture_records(**QUIET):
            assert _mon.get_tool(3) == "coroscope"
            asyncio.run(_program())  # coroscope returns DISABLE at _helper's start
        with _OtherTool((3,), restart=False) as other:
            for i in range(10):
                _helper(i)
        assert other.starts == 10


# -- restart_events -------------------------------------------------------------------------


_RESTART_EVERY = [0]  # restart events before every n-th switch (0: never)
_SWITCHES = [0]


async def _restarting_leaf(i: int) -> int:
    leaf_local = _helper(i)
    _SWITCHES[0] += 1
    if _RESTART_EVERY[0] and _SWITCHES[0] % _RESTART_EVERY[0] == 0:
        _mon.restart_events()  # what another tool (coverage.py, for one) may do at any time
    await asyncio.sleep(0)
    return leaf_local


async def _restart_program(tasks: int, n: int) -> int:
    async def worker() -> int:
        total = 0
        for i in range(n):
            total += await _restarting_leaf(i)
        return total

    return sum(await asyncio.gather(*(worker() for _ in range(tasks))))


class TestRestartEvents:
    """sys.monitoring.restart_events() re-enables every location coroscope switched off."""

    def test_records_unchanged(self) -> None:
        """Restarting events on every switch changes no record and registers no task twice."""
        signatures = []
        for every in (0, 1):
            _RESTART_EVERY[0] = every
            try:
                with capture_records(**QUIET) as records:
                    assert asyncio.run(_restart_program(10, 10)) == 10 * 55
                    session = _install._session
                    assert session is not None
                    assert session.capture.errors == 0
            finally:
                _RESTART_EVERY[0] = 0
            # The main task and ten workers, each found once (a second find: a new id).
            assert len({r["task"]["id"] for r in records}) == 11
            signatures.append(_signature(records))
        assert signatures[0] == signatures[1]
        assert len(signatures[0]) == 11

    def test_cost_stays_low(self) -> None:
        """With a restart every 20th switch, the monitored program is at most 3x slower (best of 5)."""
        times: dict[int, list[float]] = {0: [], 20: []}
        # Slow mode: every callback still runs on every switch, but no record is written, so
        # the writer thread does not compete with the measured loop.
        with capture_records(mode="slow", **QUIET):
            try:
                for _ in range(5):
                    for every, measured in times.items():
                        _RESTART_EVERY[0] = every
                        started = time.perf_counter()
                        asyncio.run(_restart_program(100, 20))
                        measured.append(time.perf_counter() - started)
            finally:
                _RESTART_EVERY[0] = 0
        quiet, restarting = min(times[0]), min(times[20])
        assert restarting < 3 * quiet, (quiet, restarting)


# -- install/uninstall cycles ---------------------------------------------------------------

CYCLES = 2000
TRACED = 100  # the last cycles run under tracemalloc (it slows every allocation)


async def _spin() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.fixture(scope="class")
def cycles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Install and uninstall thousands of times (a little asyncio work every 50th time)."""
    from coroscope.capture import Capture as Monitor

    log = str(tmp_path_factory.mktemp("cycles") / "cycles.log")
    hook = warnings._warn_unawaited_coroutine  # type: ignore[attr-defined]
    handler = signal.getsignal(signal.SIGUSR1)
    threads = {t.ident for t in threading.enumerate()}
    os_threads = _thread._count()

    def cycle(i: int) -> None:
        assert coroscope.install(output=log, environ={}) is True
        if i % 50 == 0:
            asyncio.run(_spin())
        coroscope.uninstall(timeout=5)

    try:
        started = time.perf_counter()
        for i in range(CYCLES - TRACED):
            cycle(i)
        elapsed = time.perf_counter() - started
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(CYCLES - TRACED, CYCLES):
                cycle(i)
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        deadline = time.monotonic() + 5  # threads asked to stop end soon after
        while _thread._count() > os_threads and time.monotonic() < deadline:
            time.sleep(0.01)
        yield {
            "elapsed": elapsed,
            "growth": growth,
            "monitors": sum(type(o) is Monitor for o in gc.get_objects()),
            "hook_restored": warnings._warn_unawaited_coroutine is hook,  # type: ignore[attr-defined]
            "handler_restored": signal.getsignal(signal.SIGUSR1) is handler,
            "new_threads": [t.name for t in threading.enumerate() if t.ident not in threads],
            "os_threads_added": _thread._count() - os_threads,
            "log_lines": len(read_records(Path(log))),
        }
    finally:
        # Whatever the outcome, leave the process as it was for the tests that follow.
        coroscope.uninstall()
        warnings._warn_unawaited_coroutine = hook  # type: ignore[attr-defined]
        signal.signal(signal.SIGUSR1, handler)


class TestInstallCycles:
    """Thousands of install/uninstall cycles in one process leave nothing behind."""

    def test_fast_and_working(self, cycles: dict[str, Any]) -> None:
        """The untraced cycles take under 30 s (a sanity bound: about 3 ms a cycle here); the
        monitored runs among all cycles were logged."""
        assert cycles["elapsed"] < 30
        assert cycles["log_lines"] == CYCLES // 50 * 5  # 2 suspends, 2 resumes, task.done

    def test_no_monitoring_state_left(self, cycles: dict[str, Any]) -> None:
        """No tool id, no global or local events, no callbacks."""
        for tool_id in TOOL_IDS:
            assert _mon.get_tool(tool_id) is None
            assert _mon.get_events(tool_id) == 0
            assert _mon.get_local_events(tool_id, _spin.__code__) == 0
            for event in (_E.PY_START, _E.PY_YIELD, _E.PY_RESUME, _E.PY_THROW):
                assert _mon.register_callback(tool_id, event, None) is None

    def test_no_threads_left_and_signal_restored(self, cycles: dict[str, Any]) -> None:
        """No coroscope thread (writer, watchdog) survives; SIGUSR1 is the process's own again."""
        assert cycles["new_threads"] == []
        assert cycles["os_threads_added"] == 0
        assert cycles["handler_restored"]

    def test_unawaited_hook_restored(self, cycles: dict[str, Any]) -> None:
        """Python's never-awaited hook is the original one again."""
        assert cycles["hook_restored"]

    def test_memory_does_not_grow(self, cycles: dict[str, Any]) -> None:
        """No session outlives its uninstall; 100 cycles grow traced memory by less than 256 KB."""
        assert cycles["monitors"] == 0
        assert cycles["growth"] < 256 * 1024
