"""The recorder's ring, triggers and rate limit, on records made by hand."""

from __future__ import annotations

from typing import Any

from coroscope import _schema as S
from coroscope._record import EVENT, SUSPEND, Record
from coroscope.delivery._recorder import (
    FRAME_BYTES,
    LOCAL_BYTES,
    PER_MINUTE,
    RECORD_BYTES,
    Recorder,
    estimated_bytes,
    trigger_of,
)

SECOND = 1_000_000_000


def switch(seq: int, t_ns: int, level: str = S.INFO, frames: int = 1) -> Record:
    place: Any = (None, 0, 1)
    chain = tuple((place, None, None, None) for _ in range(frames))
    return (SUSPEND, seq, t_ns, 1, 1, "t", chain, None, 10, None, level, None, -1, None)


def event(seq: int, t_ns: int, name: str, fields: dict[str, Any] | None = None) -> Record:
    return (EVENT, seq, t_ns, 1, name, S.INFO, fields or {})


class Fixture:
    def __init__(self, seconds: float = 10, max_bytes: int = 1 << 20) -> None:
        self.now = 1000.0
        self.written: list[Record] = []
        self.incidents: list[tuple[int, list[Record]]] = []
        self.seq = 10_000
        self.recorder = Recorder(
            self.written.append,
            lambda incident_id, records: self.incidents.append((incident_id, records)),
            self.make_event,
            seconds=seconds,
            max_bytes=max_bytes,
            monotonic=lambda: self.now,
        )

    def make_event(self, name: str, level: str, fields: dict[str, Any]) -> Record:
        self.seq += 1
        return (EVENT, self.seq, 0, 1, name, level, fields)


def test_nothing_is_written_without_a_trigger() -> None:
    f = Fixture()
    for i in range(100):
        assert f.recorder.put(switch(i, i * 1000))
    f.recorder.put(event(100, 100_000, S.TASK_DONE, {S.OUTCOME: S.RESULT}))
    assert f.written == [] and f.incidents == []
    assert len(f.recorder) == 101


def test_a_trigger_writes_the_incident_then_the_window_in_order() -> None:
    f = Fixture()
    for i in range(5):
        f.recorder.put(switch(i, i))
    f.recorder.put(event(5, 5, S.LOOP_BLOCKED))
    [incident] = f.written
    assert incident[4] == S.INCIDENT
    fields = incident[6]  # type: ignore[misc]
    assert fields[S.TRIGGER] == S.LOOP_BLOCKED and fields[S.INCIDENT_ID] == 1
    assert fields[S.RECORDS] == 6 and fields[S.SUPPRESSED] == 0
    [(incident_id, records)] = f.incidents
    assert incident_id == 1
    assert [r[1] for r in records] == [0, 1, 2, 3, 4, 5]


def test_a_later_incident_writes_only_what_was_not_written() -> None:
    f = Fixture()
    for i in range(3):
        f.recorder.put(switch(i, i))
    assert f.recorder.trigger("dump", "first") == 1
    f.now += 5
    for i in range(3, 6):
        f.recorder.put(switch(i, i))
    assert f.recorder.trigger("dump", "second") == 2
    assert [[r[1] for r in records] for _, records in f.incidents] == [[0, 1, 2], [3, 4, 5]]
    assert [w[6][S.REASON] for w in f.written] == ["first", "second"]  # type: ignore[misc]


def test_the_window_follows_the_switches() -> None:
    f = Fixture(seconds=1)
    f.recorder.put(switch(0, 0))
    f.recorder.put(switch(1, SECOND // 2))
    f.recorder.put(switch(2, 2 * SECOND))  # the first two are now older than a second
    f.recorder.put(event(3, 10 * SECOND, S.LOOP_BLOCKED))  # an event evicts nothing
    [(_, records)] = f.incidents
    assert [r[1] for r in records] == [2, 3]
    assert f.recorder.evicted == 2


def test_the_byte_bound_drops_the_oldest() -> None:
    per = RECORD_BYTES + 2 * FRAME_BYTES
    f = Fixture(max_bytes=10 * per)
    for i in range(25):
        f.recorder.put(switch(i, i, frames=2))
    assert estimated_bytes(switch(0, 0, frames=2)) == per
    assert len(f.recorder) == 10 and f.recorder.bytes == 10 * per
    f.recorder.trigger("dump")
    assert [r[1] for r in f.incidents[0][1]] == list(range(15, 25))


def test_rendered_locals_count_in_the_estimate() -> None:
    record = switch(0, 0, frames=1)
    place, _, awaits, held = record[6][0]  # type: ignore[misc]
    with_locals = (*record[:6], ((place, {"a": 1, "b": 2, "c": 3}, awaits, held),), *record[7:])
    assert estimated_bytes(with_locals) == RECORD_BYTES + FRAME_BYTES + 3 * LOCAL_BYTES  # type: ignore[arg-type]


def test_a_storm_of_triggers_is_rate_limited_and_counted() -> None:
    f = Fixture()
    ids = []
    for i in range(50):
        f.recorder.put(switch(i, i, level=S.WARNING))  # every one a slow step
        f.now += 0.1
        ids.append(f.recorder.trigger("slow_wait"))
    # 100 triggers in 5 seconds: at most one a second (the first at once), the rest counted.
    incidents = f.recorder.incidents
    assert 5 <= incidents <= 6
    assert len(f.incidents) == incidents and sum(i is not None for i in ids) < incidents
    assert f.recorder.suppressed_total == 100 - incidents
    # Every record was written once, in some incident.
    written = [r[1] for _, records in f.incidents for r in records]
    assert written == sorted(set(written))
    assert f.written[1][6][S.SUPPRESSED] > 0  # type: ignore[misc]


def test_at_most_ten_a_minute() -> None:
    f = Fixture()
    got = []
    for _ in range(30):
        f.now += 1.5
        got.append(f.recorder.trigger("dump"))
    assert sum(i is not None for i in got) == PER_MINUTE  # 45 s: ten, then none
    f.now += 60
    assert f.recorder.trigger("dump") is not None


def test_snapshots_are_written_at_once() -> None:
    f = Fixture()
    snap = event(0, 0, S.SNAPSHOT)
    f.recorder.put(snap)
    assert f.written == [snap] and len(f.recorder) == 0


def test_what_triggers() -> None:
    assert trigger_of(switch(0, 0, level=S.WARNING)) == "slow_step"
    assert trigger_of(switch(0, 0)) is None
    for name in (S.LOOP_BLOCKED, S.TASK_STUCK, S.DEADLOCK):
        assert trigger_of(event(0, 0, name)) == name
    assert trigger_of(event(0, 0, S.TASK_DONE, {S.OUTCOME: S.EXCEPTION})) == "task.failed"
    assert trigger_of(event(0, 0, S.TASK_DONE, {S.OUTCOME: S.CANCELLED})) is None
    assert trigger_of(event(0, 0, S.NEVER_AWAITED)) is None


def test_forced_incident_skips_the_rate_limit() -> None:
    f = Fixture()
    f.recorder.put(switch(0, 0))
    assert f.recorder.trigger("dump") == 1
    f.recorder.put(switch(1, 1, level=S.WARNING))  # suppressed: within a second
    assert f.recorder.suppressed == 1
    assert f.recorder.trigger("suppressed", force=True) == 2
    assert [r[1] for r in f.incidents[1][1]] == [1]
    assert f.written[1][6][S.SUPPRESSED] == 1  # type: ignore[misc]
