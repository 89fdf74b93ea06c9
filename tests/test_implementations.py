"""The native capture core and its pure-Python reference give the same records.

Each program runs twice under ``COROSCOPE=1``, once per implementation, and the two logs
must match record for record once what differs between any two runs (times, durations,
process and thread ids, addresses) is left out.  The programs' order of events depends
only on asyncio's FIFO scheduling, never on timers racing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from coroscope import _implementation
from helpers import clean_env, read_records, requires_startup_files, run_python

needs_native = pytest.mark.skipif(
    _implementation.NATIVE not in _implementation.available(),
    reason=f"the native core is not built here ({_implementation.import_problem()})",
)

#: Every switch mode's paths: nested chains with locals and blocks, a lock, a queue,
#: gather, an eager task, a failure, a cancellation, a never-awaited coroutine, a slow
#: step, a slow wait and a timer wait that is not slow (thresholds of 150 ms against
#: steps of microseconds or 300 ms).
PROGRAM = """
import asyncio, time

async def leaf(n):
    x = n * 2
    await asyncio.sleep(0)
    return x

async def looping(k):
    total = 0
    for i in range(3):
        total += await leaf(i)
    return total

async def locked(lock, k):
    async with lock:
        await asyncio.sleep(0)
        return k

async def consumer(queue):
    got = []
    while (item := await queue.get()) is not None:
        got.append(item)
    return got

async def fails():
    await asyncio.sleep(0)
    raise ValueError("boom")

async def blocks():
    await asyncio.sleep(0)
    time.sleep(0.3)  # a slow step
    await asyncio.sleep(0)

async def waits(event):
    await event.wait()  # a slow wait: set after the slow step

async def setter(event):
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    time.sleep(0.3)
    event.set()

async def forever():
    await asyncio.Event().wait()

async def main():
    lock = asyncio.Lock()
    queue = asyncio.Queue()
    print(await asyncio.gather(*(looping(k) for k in range(2))))
    print(await asyncio.gather(locked(lock, 1), locked(lock, 2)))
    task = asyncio.create_task(consumer(queue))
    for item in range(3):
        await queue.put(item)
        await asyncio.sleep(0)
    await queue.put(None)
    print(await task)
    print(await asyncio.gather(fails(), return_exceptions=True))
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    print(await asyncio.create_task(looping(9)))
    asyncio.get_running_loop().set_task_factory(None)
    stuck = asyncio.create_task(forever())
    await asyncio.sleep(0)
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    await asyncio.sleep(0.2)  # a timer wait that does not overrun: not slow
    event = asyncio.Event()
    await asyncio.gather(blocks(), waits(event), setter(event))
    leaf(0)  # never awaited

asyncio.run(main())
"""

_VARYING_KEYS = {"timestamp", "pid", "thread", "thread_id"}
_ADDRESS = re.compile(r"0x[0-9a-f]+")


def _stable(value: Any) -> Any:
    """``value`` without what differs between any two runs."""
    if isinstance(value, dict):
        return {
            k: _stable(v)
            for k, v in value.items()
            if k not in _VARYING_KEYS and not k.endswith(("_ms", "_s"))
        }
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, str):
        return _ADDRESS.sub("0x?", value)
    return value


def _run(tmp_path: Path, native: bool, **settings: str) -> list[dict[str, Any]]:
    log = tmp_path / f"{'native' if native else 'python'}.log"
    env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log), **settings)
    if not native:
        env["COROSCOPE_NO_EXTENSIONS"] = "1"
    done = run_python(PROGRAM, env, flags=("-W", "ignore"))
    assert done.returncode == 0, done.stderr
    assert "coroscope:" not in done.stderr, done.stderr
    return [_stable(r) for r in read_records(log)]


@needs_native
@requires_startup_files
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"COROSCOPE_MODE": "all"}, id="all"),
        pytest.param({"COROSCOPE_MODE": "all", "COROSCOPE_LOCALS": "off"}, id="all-no-locals"),
        pytest.param({"COROSCOPE_MODE": "slow"}, id="slow"),
    ],
)
def test_same_records(tmp_path: Path, settings: dict[str, str]) -> None:
    settings = {"COROSCOPE_SLOW_STEP_MS": "150", "COROSCOPE_SLOW_AWAIT_MS": "150", **settings}
    python = _run(tmp_path, native=False, **settings)
    native = _run(tmp_path, native=True, **settings)
    events = {r["event"] for r in python}
    assert {"task.done", "coroutine.never_awaited"} <= events
    if settings["COROSCOPE_MODE"] == "slow":
        slow = [r for r in python if r["event"] in ("suspend", "resume", "task.end")]
        assert {r["event"] for r in slow} == {"suspend", "resume"}, slow
    else:
        assert sum(r["event"] == "suspend" for r in python) > 20
    assert native == python


def test_native_core_built_for_ci() -> None:
    """CI must exercise the native core: an install there that silently fell back to pure
    Python (a compile error) would make every native test a copy of the Python one."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI requires the native core")
    assert _implementation.available()[0] == _implementation.NATIVE


BROKEN_CORE = """
import importlib.abc, importlib.util, sys

class BrokenCore(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # The extension is found but cannot load, as with a wheel built for another Python.
    def find_spec(self, name, path=None, target=None):
        if name == "coroscope.capture._core":
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        raise ImportError("undefined symbol: PyFake_Symbol")

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, BrokenCore())
import asyncio, coroscope
from coroscope import _implementation

coroscope.install(output=sys.argv[1])
coroscope.uninstall()
coroscope.install(output=sys.argv[1])

async def main():
    await asyncio.sleep(0)

asyncio.run(main())
coroscope.uninstall()
print(_implementation.available())
"""


def test_broken_core_falls_back_and_says_so_once(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    done = run_python(BROKEN_CORE, clean_env(), str(log))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('python',)"
    said = [line for line in done.stderr.splitlines() if "native capture core" in line]
    assert said == [
        "coroscope: the native capture core failed to import "
        "(ImportError: undefined symbol: PyFake_Symbol); using pure Python"
    ]
    assert any(r["event"] == "suspend" for r in read_records(log))  # monitored all the same


def test_unbuilt_core_is_silent(tmp_path: Path) -> None:
    """A pure-Python install (no compiler at install time) is a supported install."""
    code = BROKEN_CORE.replace(
        'raise ImportError("undefined symbol: PyFake_Symbol")',
        'raise ModuleNotFoundError("no module", name="coroscope.capture._core")',
    )
    done = run_python(code, clean_env(), str(tmp_path / "out.log"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('python',)"
    assert "native" not in done.stderr


@needs_native
def test_native_callbacks_refuse_a_state_type_of_another_layout() -> None:
    """The C callbacks write the native fields of every state they find: a table of
    pure-Python states must be refused when they are made, not corrupt memory later."""
    from coroscope.capture import _core  # type: ignore[attr-defined]
    from coroscope.capture._state import SwitchFields, state_class

    def make(state_type: type) -> object:
        return _core.Switches(
            state_type=state_type,
            by_frame={},
            codes={},
            disable=None,
            unawaited_code=None,
            on_start=print,
            yielded=print,
            resumed=print,
            on_throw=print,
            on_unwind=print,
            error=print,
            slow_step_ns=1,
            slow_await_ns=1,
            log_all=True,
            send=1,
        )

    with pytest.raises(TypeError, match="SwitchState"):
        make(state_class(SwitchFields))
    assert make(state_class(_core.SwitchState)) is not None
