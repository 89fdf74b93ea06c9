"""The bounded hand-over buffer."""

from __future__ import annotations

import threading

import pytest

from coroscope.delivery import RecordBuffer


class TestRecordBuffer:
    """FIFO, bounded, counting what it drops."""

    def test_fifo_and_bound(self) -> None:
        """Records come out in order; beyond capacity they are dropped and counted."""
        buf: RecordBuffer[int] = RecordBuffer(3)
        assert [buf.put(i) for i in range(5)] == [True, True, True, False, False]
        assert buf.drain(10) == [0, 1, 2]
        assert buf.take_dropped() == 2
        assert buf.take_dropped() == 0

    def test_drain_limit(self) -> None:
        """drain takes at most `limit` records."""
        buf: RecordBuffer[int] = RecordBuffer(10)
        for i in range(5):
            buf.put(i)
        assert buf.drain(2) == [0, 1]
        assert len(buf) == 3

    def test_capacity_must_be_positive(self) -> None:
        """A zero capacity is refused."""
        with pytest.raises(ValueError, match="positive"):
            RecordBuffer(0)

    def test_drops_counted_exactly_across_threads(self) -> None:
        """Drops from several producer threads are all counted."""
        buf: RecordBuffer[int] = RecordBuffer(100)

        def produce() -> None:
            for i in range(10_000):
                buf.put(i)

        threads = [threading.Thread(target=produce) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        kept = len(buf)
        assert kept + buf.take_dropped() == 40_000
        assert kept <= 100 + 4
