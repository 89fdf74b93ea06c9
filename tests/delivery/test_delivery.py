"""Delivery guarantees: a stalled, refusing or slow output never blocks the event loop;
reconnection with capped backoff delivers what was buffered; exit is bounded by the flush
timeout; every loss is reported."""

from __future__ import annotations

import asyncio
import itertools
import socket
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import coroscope
from aggregators import LineCollector, StalledPeer, check_accounting, free_port, wait_until
from coroscope import _api as _install
from coroscope._config import Config
from coroscope.delivery import Renderer, Writer
from coroscope.sinks import PartialWrite
from coroscope.testing import MemorySink
from helpers import clean_env, requires_startup_files, run_python


def _writer() -> Writer:
    session = _install._session
    assert session is not None
    return session.writer


async def _ticker(duration: float) -> list[float]:
    """How late each 1 ms sleep of the loop wakes up, in seconds, for ``duration`` seconds."""
    lateness = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lateness.append(time.perf_counter() - before - 0.001)
    return lateness


def _summary(lateness: list[float]) -> dict[str, float]:
    ordered = sorted(lateness)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "max_ms": 1000 * ordered[-1],
    }


@pytest.fixture
def stalled() -> Iterator[StalledPeer]:
    """An aggregator that accepts connections and never reads."""
    peer = StalledPeer()
    try:
        yield peer
    finally:
        session = _install._session
        coroscope.uninstall(timeout=0.2)
        peer.close()  # resets the connection: the blocked writer thread returns
        if session is not None:
            assert session.writer.pause(10)


class _SlowSink(MemorySink):
    """A sink that takes 100 ms per batch (a slow aggregator), without holding the GIL."""

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        time.sleep(0.1)
        super().write_batch(records, levels)


class TestNeverBlocks:
    """The loop's timing is the same whether the output is healthy, stalled, refusing or slow."""

    def _measure(self, install: Callable[[], object], duration: float = 1.0) -> dict[str, float]:
        install()
        asyncio.run(_spin_and_wait(50))  # the writer is running and has tried the sink
        return _summary(asyncio.run(_ticker(duration)))

    def test_stalled_peer(self, stalled: StalledPeer) -> None:
        """A peer that never reads: the writer blocks in send, the buffer fills and counts
        drops, and the loop's lateness stays within a generous sanity bound."""
        baseline_sink = MemorySink()
        baseline = self._measure(
            lambda: _install._install(Config(buffer_size=1000, locals="off"), (), baseline_sink)
        )
        coroscope.uninstall()
        figures = self._measure(
            lambda: coroscope.install(
                output=f"tcp://127.0.0.1:{stalled.port}",
                buffer_size=1000,
                locals="off",
                environ={"COROSCOPE_NET_TIMEOUT": "60"},
            )
        )
        writer = _writer()
        assert writer._busy, "the writer should be stuck sending to the stalled peer"
        assert writer.buffer._dropped + writer._lost.get("buffer_full", 0) > 0
        print(f"\nloop lateness: healthy {baseline}, stalled {figures}")
        assert figures["p99_ms"] < 50
        assert figures["max_ms"] < 250

    def test_refused_connections_back_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Nothing listening: connection attempts back off (a few per second, not a busy
        loop) and the loop does not notice."""
        attempts: list[float] = []
        real = socket.create_connection

        def counting(*args: Any, **kwargs: Any) -> socket.socket:
            attempts.append(time.monotonic())
            return real(*args, **kwargs)

        monkeypatch.setattr(socket, "create_connection", counting)
        port = free_port()
        figures = self._measure(
            lambda: coroscope.install(
                output=f"tcp://127.0.0.1:{port}", buffer_size=1000, locals="off", environ={}
            ),
            duration=1.5,
        )
        made = list(attempts)  # those made while the loop ran (not uninstall's last try)
        coroscope.uninstall(timeout=0.2)
        gaps = [b - a for a, b in itertools.pairwise(made)]
        assert 2 <= len(made) <= 10, made
        assert gaps == sorted(gaps) or len(gaps) < 3  # each wait at least as long as the last
        assert figures["p99_ms"] < 50

    def test_slow_sink(self) -> None:
        """A sink taking 100 ms per batch does not slow the loop."""
        figures = self._measure(
            lambda: _install._install(Config(buffer_size=1000, locals="off"), (), _SlowSink())
        )
        coroscope.uninstall(timeout=2)
        assert figures["p99_ms"] < 50


async def _spin_and_wait(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)


async def _spin(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class TestBackoff:
    """Retry delays double from RETRY_INITIAL_S and are capped at RETRY_MAX_S."""

    def test_capped_exponential(self) -> None:
        """Consecutive failures wait 0.1, 0.2, 0.4 ... s (+-20 % jitter), never above the cap."""
        writer = Writer(
            MemorySink(),
            Renderer(),
            capacity=10,
            next_seq=iter(range(100)).__next__,
            max_record_bytes=8192,
        )
        delays = []
        for _ in range(12):
            before = time.monotonic()
            writer._failed(OSError("down"))
            delays.append(writer._retry_at - before)
        assert 0.08 <= delays[0] <= 0.13
        assert 0.16 <= delays[1] <= 0.25
        assert all(d <= writer.retry_max * 1.2 + 0.01 for d in delays)
        assert delays[-1] >= writer.retry_max * 0.8
        writer._succeeded()
        assert writer._retry_at == 0


class TestReconnect:
    """An aggregator that goes away and comes back gets everything buffered meanwhile."""

    def test_records_buffered_while_down_are_delivered(self) -> None:
        """Collector stopped, records produced, collector back: all records arrive, none lost."""
        collector = LineCollector().start()
        try:
            assert coroscope.install(
                output=f"tcp://127.0.0.1:{collector.port}", locals="off", environ={}
            )
            asyncio.run(_spin(200))
            assert coroscope.flush(10)
            collector.stop()
            # The writer finds the connection gone (at a batch after the peer's close is
            # seen) and backs off; records keep coming until it has.
            deadline = time.monotonic() + 10
            while not _writer()._sink_failing and time.monotonic() < deadline:
                asyncio.run(_spin(50))
                time.sleep(0.02)
            assert _writer()._sink_failing, "the writer did not notice"
            collector.start()
            assert coroscope.flush(10)
            written = _writer().written
            connects = _writer().sink.connects  # type: ignore[attr-defined]
            coroscope.uninstall()
            wait_until(
                lambda: len({r["seq"] for r in collector.records()}) >= written, 10, "all records"
            )
            figures = check_accounting(collector.records())
            assert figures["missing"] == 0
            assert figures["delivered"] >= 2 * (
                200 + 50
            )  # before, and at least one chunk while down
            assert connects == 2
        finally:
            coroscope.uninstall(timeout=0.2)
            collector.stop()

    def test_resend_disabled_means_no_duplicates(self) -> None:
        """With COROSCOPE_RESEND_BYTES=0 nothing is sent twice after a reconnect."""
        collector = LineCollector().start()
        try:
            assert coroscope.install(
                output=f"tcp://127.0.0.1:{collector.port}",
                locals="off",
                environ={"COROSCOPE_RESEND_BYTES": "0"},
            )
            asyncio.run(_spin(200))
            assert coroscope.flush(10)
            collector.stop()
            asyncio.run(_spin(100))
            wait_until(lambda: _writer()._sink_failing, 10, "the writer to notice")
            collector.start()
            assert coroscope.flush(10)
            coroscope.uninstall()
            time.sleep(0.2)
            seqs = [r["seq"] for r in collector.records()]
            assert len(seqs) == len(set(seqs))
        finally:
            coroscope.uninstall(timeout=0.2)
            collector.stop()


_BURST_THEN_EXIT = """
import asyncio, time
async def main():
    for _ in range({n}):
        await asyncio.sleep(0)
asyncio.run(main())
print(time.time(), flush=True)
"""


class TestExit:
    """At exit everything is flushed within COROSCOPE_FLUSH_TIMEOUT; a hung output cannot
    hold the process longer."""

    @requires_startup_files
    def test_everything_buffered_is_delivered(self) -> None:
        """A burst right before exit reaches the aggregator in full."""
        collector = LineCollector().start()
        try:
            env = clean_env(
                COROSCOPE="1",
                COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{collector.port}",
                COROSCOPE_BUFFER="100000",
            )
            result = run_python(_BURST_THEN_EXIT.format(n=20_000), env)
            exit_time = time.time() - float(result.stdout.split()[-1])
            assert result.returncode == 0, result.stderr
            collector.wait_for(40_000)
            figures = check_accounting(collector.records())
            assert figures["missing"] == 0
            assert exit_time < 2.5  # the flush timeout, plus interpreter shut-down
            print(f"\nexit (flush of what was still buffered): {exit_time:.3f} s")
        finally:
            collector.stop()

    @requires_startup_files
    @pytest.mark.parametrize("kind", ["stalled", "refused"])
    def test_bounded_by_flush_timeout(self, kind: str) -> None:
        """With a stalled or absent aggregator, the process exits once the flush timeout is
        spent, saying how many records were not written."""
        peer = StalledPeer() if kind == "stalled" else None
        port = peer.port if peer is not None else free_port()
        try:
            env = clean_env(
                COROSCOPE="1",
                COROSCOPE_OUTPUT=f"tcp://127.0.0.1:{port}",
                COROSCOPE_FLUSH_TIMEOUT="0.5",
                COROSCOPE_NET_TIMEOUT="30",
            )
            result = run_python(_BURST_THEN_EXIT.format(n=20_000), env, timeout=30)
            exit_time = time.time() - float(result.stdout.split()[-1])
            assert result.returncode == 0, result.stderr
            assert "records not written" in result.stderr
            assert exit_time < 0.5 + 1.0, exit_time
            print(f"\nexit with a {kind} aggregator: {exit_time:.3f} s (flush timeout 0.5 s)")
        finally:
            if peer is not None:
                peer.close()


class _LossySink(MemorySink):
    """A sink that, batch after batch, fails outright, takes part of the batch then fails,
    or gives some records up for good (as UDP or an OTLP rejection would)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def write_batch(
        self, records: list[bytes], levels: Sequence[str] = ()
    ) -> dict[str, int] | None:
        self.calls += 1
        step = self.calls % 4
        if step == 1:
            raise OSError("connection refused")
        if step == 2 and len(records) > 1:
            half = len(records) // 2
            super().write_batch(records[:half], levels)
            raise PartialWrite(half, ConnectionResetError("reset"))
        if step == 3:  # the last record of the batch is given up for good
            super().write_batch(records[:-1], levels)
            return {"sink_error": 1}
        super().write_batch(records, levels)
        return None


class TestAccounting:
    """Whatever the sink does, every seq is delivered once or counted in a `dropped` record."""

    def test_failures_partial_writes_and_losses(self) -> None:
        """Refusals, partial writes and losses (loss reports included): the report is exact."""
        sink = _LossySink()
        assert _install._install(Config(buffer_size=300, locals="off"), (), sink)
        writer = _writer()
        writer.retry_initial = writer.retry_max = 0.001
        try:
            for _ in range(20):
                asyncio.run(_spin(50))
                time.sleep(0.01)
            deadline = time.monotonic() + 20
            while not coroscope.flush(1):
                assert time.monotonic() < deadline
        finally:
            coroscope.uninstall(timeout=1)
        records = sink.records()
        figures = check_accounting(records)
        assert figures["duplicates"] == 0
        reasons = {r["reason"] for r in records if r["event"] == "dropped"}
        assert "sink_error" in reasons
        assert sink.calls >= 8  # every behaviour of the sink came up at least twice


class TestWriterMemory:
    """The writer keeps nothing per record once it is written."""

    def test_abandoned_and_slow_tasks_leave_nothing(self, tmp_path: Path) -> None:
        """Tasks abandoned while suspended, and slow-mode resumes: the event builder keeps
        only what depends on places (a few entries), not on records."""

        async def abandoned(i: int) -> None:
            payload = [i] * 10
            await asyncio.Event().wait()
            del payload

        async def slow_wait() -> None:
            for _ in range(20):
                await asyncio.sleep(0.003)

        kept: list[asyncio.Task[None]] = []

        async def main() -> None:
            kept.extend(asyncio.create_task(abandoned(i)) for i in range(300))
            await asyncio.gather(*(slow_wait() for _ in range(5)))

        for mode, settings in (("all", {}), ("slow", {"slow_step_ms": 0.001, "slow_await_ms": 1})):
            log = str(tmp_path / f"{mode}.log")
            assert coroscope.install(output=log, environ={}, mode=mode, **settings)
            try:
                loop = asyncio.new_event_loop()
                loop.run_until_complete(main())
                writer = _writer()
                assert writer.flush(10)
                held = {
                    name: len(value)
                    for name in type(writer.builder).__slots__
                    if isinstance(value := getattr(writer.builder, name), dict)
                }
                assert all(n <= 20 for n in held.values()), (mode, held)
            finally:
                coroscope.uninstall(timeout=0)
                loop.close()
