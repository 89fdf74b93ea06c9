"""The streaming log reader: formats, tolerance, chunking, and the record helpers."""

from __future__ import annotations

import gzip
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroscope.tools._logread import LogReader, Progress, check_inputs
from coroscope.tools._places import frame_location, frames_summary, is_asyncio_file, timestamp_us

AIO = "/usr/lib/python3.12/asyncio/tasks.py"
FRAMES: list[dict[str, Any]] = [
    {"function": "main", "file": "/app/main.py", "line": 5},
    {"function": "fetch", "file": "/app/net.py", "line": 42},
    {"function": "sleep", "file": AIO, "line": 665},
]


def _rec(seq: int, event: str = "suspend", **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "level": "info",
        "logger": "coroscope",
        "timestamp": f"2026-11-25T13:22:03.{seq:06d}Z",
        "pid": 7,
        "thread": "MainThread",
        "thread_id": 1,
        "seq": seq,
        **extra,
    }


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _read(tmp_path: Path, data: bytes, name: str = "x.log", **kw: Any) -> tuple[list[Any], Any]:
    path = tmp_path / name
    path.write_bytes(data)
    reader = LogReader([str(path)], **kw)
    return list(reader), reader.stats


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(io.BytesIO(data))


class TestFormats:
    """Plain, gzip and standard input all give the same records."""

    def test_plain_file_yields_records_in_order(self, tmp_path: Path) -> None:
        """Every coroscope line of a plain file comes out, in file order, as a dict."""
        records, stats = _read(tmp_path, b"".join(_line(_rec(i)) for i in range(5)))
        assert [r["seq"] for r in records] == [0, 1, 2, 3, 4]
        assert (stats.records, stats.lines, stats.skipped, stats.files) == (5, 5, 0, 1)
        assert stats.bytes == (tmp_path / "x.log").stat().st_size

    def test_gzip_is_detected_by_magic_not_name(self, tmp_path: Path) -> None:
        """A gzip file named ``.log`` is decompressed; ``bytes`` counts compressed input."""
        data = gzip.compress(b"".join(_line(_rec(i)) for i in range(3)))
        records, stats = _read(tmp_path, data, name="not-a-gz-name.log")
        assert [r["seq"] for r in records] == [0, 1, 2]
        assert stats.bytes == len(data)

    def test_concatenated_gzip_members(self, tmp_path: Path) -> None:
        """Two gzip members appended to one file (rotated and appended) are both read."""
        data = gzip.compress(_line(_rec(0))) + gzip.compress(_line(_rec(1)))
        records, _ = _read(tmp_path, data)
        assert [r["seq"] for r in records] == [0, 1]

    @pytest.mark.parametrize("compress", [False, True])
    def test_stdin_dash(self, monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
        """``-`` reads standard input, plain or gzip, without seeking it."""
        data = b"".join(_line(_rec(i)) for i in range(4))
        if compress:
            data = gzip.compress(data)
        monkeypatch.setattr(sys, "stdin", _Stdin(data))
        reader = LogReader(["-"])
        assert [r["seq"] for r in reader] == [0, 1, 2, 3]
        assert reader.stats.bytes == len(data)

    def test_several_files_in_order(self, tmp_path: Path) -> None:
        """Files are read one after the other and their statistics add up."""
        a, b = tmp_path / "a.log", tmp_path / "b.log.gz"
        a.write_bytes(_line(_rec(0)) + _line(_rec(1)))
        b.write_bytes(gzip.compress(_line(_rec(2))))
        reader = LogReader([str(a), str(b)])
        assert [r["seq"] for r in reader] == [0, 1, 2]
        assert reader.stats.files == 2
        assert reader.stats.bytes == a.stat().st_size + b.stat().st_size


class TestTolerance:
    """Lines that are not coroscope records are skipped and counted by kind."""

    def test_foreign_invalid_and_blank_lines(self, tmp_path: Path) -> None:
        """Other loggers' JSON and non-objects are foreign, text is invalid, blanks are ignored."""
        data = b"".join(
            [
                _line({"event": "hello", "logger": "app"}),
                _line(_rec(0)),
                b"Traceback (most recent call last):\n",
                _line([1, 2, 3]),
                b"\n   \n",
                _line({"event": "no logger"}),
                _line(_rec(1)),
            ]
        )
        records, stats = _read(tmp_path, data)
        assert [r["seq"] for r in records] == [0, 1]
        assert (stats.foreign, stats.invalid, stats.truncated) == (3, 1, 0)
        assert stats.skipped == 4

    def test_truncated_last_line(self, tmp_path: Path) -> None:
        """A last line cut mid-record is counted as truncated; earlier records survive."""
        whole = _line(_rec(0)) + _line(_rec(1))
        records, stats = _read(tmp_path, whole + _line(_rec(2))[:40])
        assert [r["seq"] for r in records] == [0, 1]
        assert (stats.truncated, stats.invalid) == (1, 0)

    def test_complete_last_line_without_newline(self, tmp_path: Path) -> None:
        """A final record lacking only its newline is still read."""
        records, stats = _read(tmp_path, _line(_rec(0)) + _line(_rec(1)).rstrip(b"\n"))
        assert [r["seq"] for r in records] == [0, 1]
        assert stats.skipped == 0

    def test_record_glued_after_truncated_one_is_recovered(self, tmp_path: Path) -> None:
        """A crash mid-line followed by an appended record loses only the broken head."""
        broken = _line(_rec(1))[:55]
        data = _line(_rec(0)) + broken + _line(_rec(2, task={"name": "t", "id": 3}))
        records, stats = _read(tmp_path, data)
        assert [r["seq"] for r in records] == [0, 2]
        assert records[1]["task"] == {"name": "t", "id": 3}
        assert (stats.truncated, stats.recovered, stats.records) == (1, 1, 2)

    def test_crlf_line_endings(self, tmp_path: Path) -> None:
        """Records written with Windows line endings parse."""
        data = b"".join(_line(_rec(i)).replace(b"\n", b"\r\n") for i in range(3))
        records, stats = _read(tmp_path, data)
        assert len(records) == 3
        assert stats.skipped == 0

    def test_gzip_cut_short(self, tmp_path: Path) -> None:
        """A gzip stream that ends early yields what it holds and reports an error."""
        lines = b"".join(_line(_rec(i, pad="x" * 50)) for i in range(2000))
        data = gzip.compress(lines)
        records, stats = _read(tmp_path, data[: len(data) // 2], chunk_size=4096)
        assert 0 < len(records) < 2000
        assert [r["seq"] for r in records] == list(range(len(records)))
        assert len(stats.errors) == 1
        assert "EOFError" in stats.errors[0]

    def test_oversize_line_is_skipped(self, tmp_path: Path) -> None:
        """A line longer than ``max_line`` is dropped without buffering it, and reading goes on."""
        data = _line(_rec(0)) + b"y" * 5000 + b"\n" + _line(_rec(1))
        records, stats = _read(tmp_path, data, chunk_size=64, max_line=1000)
        assert [r["seq"] for r in records] == [0, 1]
        assert stats.oversize == 1

    @settings(max_examples=40, deadline=None)
    @given(chunk=st.integers(min_value=1, max_value=300))
    def test_chunk_boundaries_do_not_matter(self, chunk: int) -> None:
        """Any chunk size gives the same records and counts as reading in one go."""
        data = b"".join(
            [
                _line(_rec(0)),
                b"not json\n",
                _line({"logger": "other"}),
                _line(_rec(1, frames=[{"function": "f", "file": "a.py", "line": 3}])),
                b"\n",
                _line(_rec(2))[:30],
            ]
        )
        results = []
        for size in (chunk, 1 << 20):
            stdin = _Stdin(data)
            reader = LogReader([], chunk_size=size)
            records = list(reader._read_source(stdin.buffer, "<test>", 0))
            results.append((records, reader.stats.as_dict()))
        assert results[0] == results[1]
        assert [r["seq"] for r in results[0][0]] == [0, 1]


class TestInputs:
    """Unreadable inputs are reported before any reading starts."""

    def test_missing_and_directory(self, tmp_path: Path) -> None:
        """A missing path and a directory each give one message; a good file none."""
        good = tmp_path / "ok.log"
        good.write_bytes(b"")
        problems = check_inputs([str(good), str(tmp_path / "nope.log"), str(tmp_path), "-"])
        assert len(problems) == 2
        assert "nope.log" in problems[0]
        assert "directory" in problems[1]

    def test_stdin_twice(self) -> None:
        """Standard input can be read once only."""
        assert check_inputs(["-", "-"]) == ["'-' (standard input) given more than once"]


class TestProgress:
    """The progress line: off by default, throttled, ended cleanly."""

    def test_disabled_writes_nothing(self) -> None:
        """A disabled progress line never touches its stream."""
        out = io.StringIO()
        progress = Progress(enabled=False, stream=out, total=100)
        progress.update(50, 1, force=True)
        progress.finish(100, 2)
        assert out.getvalue() == ""

    def test_throttled_and_finished(self) -> None:
        """Updates within the interval are dropped; ``finish`` shows the total and a newline."""
        out = io.StringIO()
        progress = Progress(enabled=True, stream=out, total=2_000_000, interval=3600, label="t")
        progress.update(1_000_000, 10)  # within the interval of the start: not shown
        assert out.getvalue() == ""
        progress.update(1_000_000, 10, force=True)
        assert "t: 1.0 / 2.0 MB (50%)" in out.getvalue()
        progress.finish(2_000_000, 20)
        text = out.getvalue()
        assert "2.0 / 2.0 MB (100%)" in text
        assert "20 records" in text
        assert text.endswith("\n")

    def test_reader_reports_total_size(self, tmp_path: Path) -> None:
        """The reader fills in the total from file sizes and reports bytes read per chunk."""
        path = tmp_path / "x.log"
        path.write_bytes(b"".join(_line(_rec(i)) for i in range(100)))
        out = io.StringIO()
        progress = Progress(enabled=True, stream=out, interval=0)
        reader = LogReader([str(path)], progress=progress, chunk_size=1024)
        assert progress.total == path.stat().st_size
        assert len(list(reader)) == 100
        assert f"{path.stat().st_size / 1e6:,.1f} / " in out.getvalue()
        assert out.getvalue().count("\r") > 3


class TestLocation:
    """Where a task stopped: the innermost frame outside asyncio."""

    def test_skips_asyncio_frames(self) -> None:
        """asyncio's own ``sleep`` frame is passed over for the user's ``await``."""
        assert frame_location(FRAMES) == "/app/net.py:42 fetch"

    def test_innermost_option(self) -> None:
        """``innermost=True`` names the innermost frame even inside asyncio."""
        assert frame_location(FRAMES, innermost=True) == f"{AIO}:665 sleep"

    def test_all_asyncio_and_unusable(self) -> None:
        """All-asyncio chains give the innermost frame; missing frames give ``<unknown>``."""
        only = [{"function": "Queue.get", "file": "/x/asyncio/queues.py", "line": 158}]
        assert frame_location(only) == "/x/asyncio/queues.py:158 Queue.get"
        assert frame_location(None) == "<unknown>"
        assert frame_location([]) == "<unknown>"
        assert frame_location(["text"]) == "<unknown>"

    def test_asyncio_file_detection(self) -> None:
        """Only files directly in an ``asyncio`` directory outside site-packages are asyncio's."""
        assert is_asyncio_file(AIO)
        assert is_asyncio_file(r"C:\Python312\Lib\asyncio\tasks.py")
        assert not is_asyncio_file("/app/asyncio_helpers.py")
        assert not is_asyncio_file("/venv/lib/site-packages/asyncio/compat.py")
        assert not is_asyncio_file("/usr/lib/python3.12/asyncio/sub/x.py")
        assert not is_asyncio_file("tasks.py")

    def test_frames_summary_keeps_innermost(self) -> None:
        """A long chain is summarised by its innermost frames and a count of the rest."""
        frames = [{"function": f"f{i}", "file": "a.py", "line": i} for i in range(20)]
        summary = frames_summary(frames, limit=3)
        assert summary == ["... 17 outer frames", "a.py:17 f17", "a.py:18 f18", "a.py:19 f19"]


class TestTimestamps:
    """Record timestamps to integer microseconds."""

    @pytest.mark.parametrize(
        "text",
        [
            "2026-11-25T13:22:03.123456Z",
            "2026-11-25T13:22:03.000001Z",
            "1999-12-31T23:59:59.999999Z",
        ],
    )
    def test_fast_path_matches_fromisoformat(self, text: str) -> None:
        """coroscope's own format gives exactly what ``datetime.fromisoformat`` gives."""
        expected = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
        assert timestamp_us(text) == expected // timedelta(microseconds=1)

    def test_other_forms(self) -> None:
        """Offsets, naive (taken as UTC) and epoch seconds work; garbage gives ``None``."""
        utc = timestamp_us("2026-11-25T13:22:03.5Z")
        assert utc == timestamp_us("2026-11-25T14:22:03.500+01:00")
        assert utc == timestamp_us("2026-11-25T13:22:03.500000")
        assert timestamp_us(1.5) == 1_500_000
        assert timestamp_us("yesterday") is None
        assert timestamp_us("2026-11-25T13:22:03.12345xZ") is None
        assert timestamp_us(None) is None
