"""Not a test: measures the delivery figures quoted in the README and the changelog.

    PYTHONPATH=src python benchmarks/delivery_figures.py

Prints records per second to rsyslog (end to end, and the sink alone), what a restart of
rsyslog loses with and without the resend window, the time taken at exit to flush, and
the event loop's lateness while the output is stalled.  Needs rsyslogd (.ci/services).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

import coroscope

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from aggregators import (
    LineCollector,
    Rsyslog,
    StalledPeer,
    distinct_seqs_reach,
    receive_buffer_max,
    wait_until,
)
from coroscope import _api as _install
from coroscope.sinks._syslog import SyslogTcpSink
from helpers import clean_env


async def _spin(n: int) -> None:
    note = "a local"  # noqa: F841
    for _ in range(n):
        await asyncio.sleep(0)


def end_to_end(tmp: Path) -> None:
    server = Rsyslog(tmp / "e2e", queue="LinkedList")
    server.start()
    coroscope.install(output=f"syslog+tcp://{server.url}", buffer_size=250_000, environ={})
    started = time.perf_counter()
    asyncio.run(_spin(50_000))
    captured = time.perf_counter() - started
    coroscope.flush(120)
    writer = _install._session.writer  # type: ignore[union-attr]
    written = writer.written
    coroscope.uninstall()
    server.wait_for_lines(written, 120)
    total = time.perf_counter() - started
    server.stop()
    print(
        f"end to end (capture + render + syslog+tcp -> rsyslog): {written} records in "
        f"{total:.2f} s = {written / total:,.0f} records/s (capture alone {captured:.2f} s)"
    )


def sink_alone(tmp: Path, queue: str) -> None:
    server = Rsyslog(tmp / f"sink-{queue}", queue=queue)
    server.start()
    sink = SyslogTcpSink("127.0.0.1", server.port, app_name="bench", timeout=5, resend_bytes=0)
    record = orjson.loads(
        b'{"event":"suspend","level":"info","logger":"coroscope",'
        b'"timestamp":"2024-01-01T00:00:00.000000Z","pid":1,"thread":"MainThread",'
        b'"thread_id":1,"seq":0,"task":{"name":"Task-1","id":1},"frames":[{"function":"spin",'
        b'"file":"/app/x.py","line":13,"lasti":90,"blocks":[],"locals":{"n":1},'
        b'"awaits":null}],"awaiting":{"type":"NoneType","repr":"None"},"step_ms":0.01}'
    )
    total = 200_000
    batches = []
    for start in range(0, total, 4096):
        batch = []
        for seq in range(start, min(total, start + 4096)):
            record["seq"] = seq
            batch.append(orjson.dumps(record))
        batches.append(batch)
    started = time.perf_counter()
    for batch in batches:
        sink.write_batch(batch)
    sent = time.perf_counter() - started
    sink.close()
    server.wait_for_lines(total, 120)
    arrived = time.perf_counter() - started
    server.stop()
    size = len(batches[0][0])
    print(
        f"sink alone ({size}-byte records; rsyslog {queue} queue, mmjsonparse, omfile): {total} "
        f"records sent in {sent:.2f} s, all written by rsyslog after {arrived:.2f} s = "
        f"{total / arrived:,.0f} records/s"
    )


def restart(tmp: Path, sig: int, resend: int) -> None:
    server = Rsyslog(tmp / f"restart-{sig}-{resend}")
    server.start()
    coroscope.install(
        output=f"syslog+tcp://{server.url}",
        buffer_size=2000,
        locals="off",
        environ={"COROSCOPE_RESEND_BYTES": str(resend)},
    )
    writer = _install._session.writer  # type: ignore[union-attr]
    done = threading.Event()

    def cycle() -> None:
        wait_until(lambda: writer.written >= 5000, 60, "records")
        server.stop(sig)
        time.sleep(0.2)
        server.start()
        done.set()

    async def produce() -> None:
        while not done.is_set():
            await _spin(100)
        await _spin(3000)

    thread = threading.Thread(target=cycle)
    thread.start()
    asyncio.run(produce())
    thread.join()
    coroscope.flush(30)
    written = writer.written
    coroscope.uninstall()
    # Without the resend window some records never arrive: report what did.
    with contextlib.suppress(BaseException):
        wait_until(distinct_seqs_reach(server.records, written), 20, "records")
    records = server.records()
    server.stop()
    seqs = {r["seq"] for r in records}
    reported = sum({r["seq"]: r["count"] for r in records if r["event"] == "dropped"}.values())
    missing = max(seqs) + 1 - len(seqs)
    print(
        f"restart with {signal.Signals(sig).name}, resend window {resend >> 20} MiB: "
        f"{missing} missing, {reported} reported as dropped (buffer_full while down), "
        f"{missing - reported} lost unreported, {len(records) - len(seqs)} duplicates"
    )


def exit_flush(records: int) -> None:
    collector = LineCollector().start()
    code = (
        "import asyncio, time\n"
        "async def main():\n"
        f"    for _ in range({records // 2}):\n"
        "        await asyncio.sleep(0)\n"
        "asyncio.run(main())\n"
        "print(time.time(), flush=True)\n"
    )
    env = clean_env(
        COROSCOPE="1",
        COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{collector.port}",
        COROSCOPE_BUFFER="1000000",
    )
    times = []
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        times.append(time.time() - float(result.stdout.split()[-1]))
    collector.stop()
    print(f"exit with ~{records} records just captured: exit took {min(times):.3f} s (best of 3)")


def stalled_latency() -> None:
    async def ticker(duration: float) -> list[float]:
        late = []
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - before - 0.001)
        return late

    def summary(late: list[float]) -> str:
        ordered = sorted(late)
        p50 = 1000 * statistics.median(ordered)
        p99 = 1000 * ordered[int(0.99 * (len(ordered) - 1))]
        return f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {1000 * ordered[-1]:.3f} ms"

    print(f"loop lateness, not monitored: {summary(asyncio.run(ticker(3)))}")
    collector = LineCollector().start()
    coroscope.install(output=f"tcp://127.0.0.1:{collector.port}", locals="off", environ={})
    print(f"loop lateness, healthy tcp output: {summary(asyncio.run(ticker(3)))}")
    coroscope.uninstall()
    collector.stop()
    peer = StalledPeer()
    coroscope.install(
        output=f"tcp://127.0.0.1:{peer.port}",
        locals="off",
        environ={"COROSCOPE_NET_TIMEOUT": "60"},
    )
    asyncio.run(_spin(20_000))  # fill the socket buffers: the writer now blocks in send
    time.sleep(0.5)
    print(f"loop lateness, stalled tcp output: {summary(asyncio.run(ticker(3)))}")
    thread = _install._session.writer._thread  # type: ignore[union-attr]
    coroscope.uninstall(timeout=0.1)
    peer.close()
    if thread is not None:
        thread.join(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        end_to_end(tmp)
        sink_alone(tmp, "Direct")
        sink_alone(tmp, "LinkedList")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            restart(tmp, sig, receive_buffer_max() + (1 << 20))
            restart(tmp, sig, 0)
        exit_flush(40_000)
        stalled_latency()


if __name__ == "__main__":
    main()
