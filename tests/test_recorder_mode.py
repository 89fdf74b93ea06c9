"""``recorder`` mode, run-time mode switches and the control channel, in real processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from coroscope import _schema as S
from coroscope._cli import main as cli_main
from coroscope.tools._ctl import send
from helpers import clean_env, read_records, requires_startup_files, run_python

BLOCKS = """
import asyncio, time

async def worker(n):
    total = 0
    for i in range(4):
        total += i
        await asyncio.sleep(0.01)
    if n == 1:
        time.sleep(0.8)  # blocks the loop
    await asyncio.sleep(0)

async def main():
    await asyncio.gather(worker(0), worker(1))

asyncio.run(main())
"""


def _recorder_env(log: Path, **extra: str) -> dict[str, str]:
    settings = {"COROSCOPE_BLOCKED_MS": "200", **extra}
    return clean_env(
        COROSCOPE="1", COROSCOPE_MODE="recorder", COROSCOPE_OUTPUT=str(log), **settings
    )


@requires_startup_files
def test_a_blocked_loop_writes_what_led_up_to_it(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    done = run_python(BLOCKS, _recorder_env(log))
    assert done.returncode == 0, done.stderr
    records = read_records(log)
    first = records[0]
    assert first["event"] == S.INCIDENT and first[S.TRIGGER] == S.LOOP_BLOCKED
    incident = [r for r in records if r.get(S.INCIDENT_ID) == first[S.INCIDENT_ID]]
    assert incident[0] is first and first[S.RECORDS] == len(incident) - 1
    blocked = next(r for r in incident if r["event"] == S.LOOP_BLOCKED)
    task = blocked[S.TASK]["id"]
    earlier = [r for r in incident if r["event"] == "suspend" and r["task"]["id"] == task]
    # The blocking task's switches before the block, with their locals, in order.
    assert [r["frames"][0]["locals"]["total"] for r in earlier] == [0, 1, 3, 6]
    assert [r["seq"] for r in incident[1:]] == sorted(r["seq"] for r in incident[1:])
    # Nothing but incidents: every record belongs to one.
    assert all(S.INCIDENT_ID in r for r in records)


@requires_startup_files
def test_nothing_is_written_when_nothing_goes_wrong(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = """
        import asyncio, coroscope

        async def main():
            for _ in range(50):
                await asyncio.sleep(0)
            coroscope.flush()  # writes what triggers produced: nothing

        asyncio.run(main())
    """
    done = run_python(code, _recorder_env(log))
    assert done.returncode == 0, done.stderr
    assert read_records(log) == []


@requires_startup_files
def test_a_failed_task_and_a_dump_are_incidents(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = """
        import asyncio, coroscope

        async def fails():
            await asyncio.sleep(0)
            raise KeyError("x")

        async def main():
            task = asyncio.create_task(fails())
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(1.1)  # past the rate limit
            print(coroscope.dump("by hand"))

        asyncio.run(main())
    """
    done = run_python(code, _recorder_env(log, COROSCOPE_BLOCKED_MS="0"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    incidents = [r for r in read_records(log) if r["event"] == S.INCIDENT]
    assert [(r[S.TRIGGER], r[S.REASON]) for r in incidents] == [
        ("task.failed", "task.failed"),
        ("dump", "by hand"),
    ]
    failed = [r for r in read_records(log) if r["event"] == S.TASK_DONE]
    assert failed[0]["outcome"] == "exception" and failed[0][S.INCIDENT_ID] == 1


@requires_startup_files
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_dump_signal(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = """
        import asyncio, os, signal, time

        async def main():
            await asyncio.sleep(0)
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.3)  # the incident is made on a thread of its own
            await asyncio.sleep(0)

        asyncio.run(main())
    """
    done = run_python(code, _recorder_env(log, COROSCOPE_BLOCKED_MS="0"))
    assert done.returncode == 0, done.stderr
    incident, *later = [r for r in read_records(log) if r["event"] == S.INCIDENT]
    assert incident[S.TRIGGER] == "signal" and incident[S.RECORDS] > 0
    # The slow step (the sleep) came within a second: held back, then written at exit.
    assert [r[S.TRIGGER] for r in later] == ["suppressed"]


@requires_startup_files
def test_set_mode_for_a_while_then_back(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = """
        import asyncio, time, coroscope

        async def ticks(n):
            for _ in range(n):
                await asyncio.sleep(0)

        async def main():
            await ticks(5)  # slow mode: nothing
            coroscope.set_mode("all", seconds=0.5)
            await ticks(5)  # every switch
            await asyncio.sleep(1.0)
            await ticks(5)  # slow again: nothing
            print(coroscope.current_config().mode)

        asyncio.run(main())
    """
    env = clean_env(COROSCOPE="1", COROSCOPE_MODE="slow", COROSCOPE_OUTPUT=str(log))
    done = run_python(code, env)
    assert done.returncode == 0, done.stderr
    records = read_records(log)
    changes = [r for r in records if r["event"] == S.MODE_CHANGED]
    assert [(r["mode"], r["previous"], r["for_s"]) for r in changes] == [
        ("all", "slow", 0.5),
        ("slow", "all", None),
    ]
    start, back = records.index(changes[0]), records.index(changes[1])
    during = [r for r in records[start:back] if r["event"] == "suspend"]
    assert len(during) >= 5
    assert all(r["task"]["id"] == during[0]["task"]["id"] for r in during)  # one task, one id
    assert [r for r in records[back:] if r["event"] in ("suspend", "resume")] == []


@requires_startup_files
def test_from_watch_to_all_follows_running_tasks(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = """
        import asyncio, coroscope

        async def main():
            for i in range(6):
                if i == 3:
                    coroscope.set_mode("all")
                await asyncio.sleep(0)

        asyncio.run(main())
    """
    env = clean_env(COROSCOPE="1", COROSCOPE_MODE="watch", COROSCOPE_OUTPUT=str(log))
    done = run_python(code, env)
    assert done.returncode == 0, done.stderr
    suspends = [r for r in read_records(log) if r["event"] == "suspend"]
    assert [r["frames"][0]["locals"]["i"] for r in suspends] == [3, 4, 5]


def test_set_mode_rejects_bad_values() -> None:
    import coroscope

    with coroscope.monitoring(output=os.devnull, mode="slow"):
        with pytest.raises(ValueError, match="mode"):
            coroscope.set_mode("fast")
        with pytest.raises(ValueError, match="seconds"):
            coroscope.set_mode("all", seconds=-1)
        with pytest.raises(RuntimeError, match="not recorder"):
            coroscope.dump()
    with pytest.raises(RuntimeError, match="not installed"):
        coroscope.set_mode("all")


SERVED = """
import asyncio, os, sys

async def main():
    while not os.path.exists(sys.argv[1]):
        await asyncio.sleep(0.01)

asyncio.run(main())
print("still running")
"""


@pytest.fixture
def served(tmp_path: Path) -> Any:
    """A process in recorder mode with a control socket; stops when the test is done."""
    sock = tmp_path / "ctl.sock"
    stop = tmp_path / "stop"
    log = tmp_path / "out.log"
    env = _recorder_env(log, COROSCOPE_CONTROL=str(sock), COROSCOPE_BLOCKED_MS="0")
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVED), str(stop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    yield sock, log
    stop.touch()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == "still running"
    assert not sock.exists()  # removed at exit


@requires_startup_files
@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")
def test_control_channel(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sock, log = served
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    status = send(str(sock), "status")
    assert status["ok"] and status["mode"] == "recorder" and "recorder" in status
    assert send(str(sock), "dump from ctl") == {
        "ok": True,
        "incident_id": 1,
        "suppressed": False,
    }
    assert send(str(sock), "snapshot")["ok"]
    reply = send(str(sock), "mode all 30")
    assert reply == {"ok": True, "mode": "all", "for_s": 30.0}
    assert send(str(sock), "dump")["ok"] is False  # not in recorder mode now
    # The command line tool says the same.
    assert cli_main(["ctl", str(sock), "mode", "recorder"]) == 0
    assert '"mode": "recorder"' in capsys.readouterr().out
    assert cli_main(["ctl", str(sock), "status"]) == 0
    # Malformed input: a clear error, and the process keeps serving.
    for bad in ("", "exec print(1)", "mode fast", "mode all soon", "x" * 5000, "\xff\xfe"):
        reply = send(str(sock), bad)
        assert reply["ok"] is False and reply["error"], bad
    with __import__("socket").socket(__import__("socket").AF_UNIX) as raw:
        raw.connect(str(sock))
        raw.sendall(b"\xff\xfe\n")
        assert b"not UTF-8" in raw.recv(1000)
    assert send(str(sock), "status")["ok"]
    deadline = time.monotonic() + 10  # the writer writes in the background
    while not (incident := [r for r in read_records(log) if r["event"] == S.INCIDENT]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [(r[S.TRIGGER], r[S.REASON]) for r in incident] == [("control", "from ctl")]


def test_ctl_reports_an_unreachable_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["ctl", str(tmp_path / "none.sock"), "status"]) == 2
    assert "coroscope ctl" in capsys.readouterr().err


@requires_startup_files
def test_control_path_taken_by_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_text("not a socket")
    env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=os.devnull, COROSCOPE_CONTROL=str(path))
    done = run_python("import asyncio; asyncio.run(asyncio.sleep(0))", env)
    assert done.returncode == 0, done.stderr
    assert "control channel" in done.stderr and "not a socket" in done.stderr
    assert path.read_text() == "not a socket"
