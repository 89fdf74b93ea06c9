"""The ``coroscope trace`` command: arguments, reading, writing the trace file."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
import tempfile
from collections.abc import Sequence

from .. import _schema as S
from ._logread import LogReader, Progress, ReadStats, check_inputs
from ._trace import BinaryOutput, TraceBuilder, TraceWriter

__all__ = ["main", "register", "run"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="coroscope logs (plain or gzip; '-' for stdin)"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="TRACE",
        help="the trace file to write ('-' for stdout; a name ending in .gz is gzipped)",
    )
    parser.add_argument(
        "--incident",
        type=int,
        metavar="ID",
        help="only the records written for incident ID (recorder mode)",
    )
    parser.add_argument(
        "--innermost",
        action="store_true",
        help="locate switches at the innermost frame, even inside asyncio",
    )
    parser.add_argument(
        "--locals",
        action="store_true",
        help="add the waiting frame's captured locals to each wait span's arguments",
    )
    parser.add_argument(
        "--max-tasks",
        type=_positive,
        default=100_000,
        metavar="N",
        help="live tasks tracked at once; the least recently seen have their open span "
        "closed beyond it (default 100000)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number greater than 0") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a whole number greater than 0")
    return value


def _want_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _convert(args: argparse.Namespace, out: BinaryOutput) -> tuple[TraceBuilder, ReadStats]:
    progress = Progress(
        enabled=_want_progress(args.progress),
        label="coroscope trace",
        final=args.progress is True,
    )
    reader = LogReader(args.files, progress=progress)
    writer = TraceWriter(out)
    builder = TraceBuilder(
        writer, innermost=args.innermost, with_locals=args.locals, max_tasks=args.max_tasks
    )
    feed = builder.feed
    only = args.incident
    for record in reader:
        if only is None or record.get(S.INCIDENT_ID) == only:
            feed(record)
    builder.finish()
    writer.close(
        {
            "generator": "coroscope trace",
            "records": reader.stats.records,
            "skipped_lines": reader.stats.skipped,
            "tracks": builder.tracks,
        }
    )
    return builder, reader.stats


def run(args: argparse.Namespace) -> int:
    """Run ``coroscope trace`` with parsed arguments; returns the exit code."""
    problems = check_inputs(args.files)
    if problems:
        for problem in problems:
            print(f"coroscope trace: {problem}", file=sys.stderr)
        return 1
    output: str = args.output
    try:
        if output == "-":
            sys.stdout.flush()
            builder, stats = _convert(args, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            builder, stats = _write_file(args, output)
    except KeyboardInterrupt:
        print("\ncoroscope trace: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"coroscope trace: cannot write {output}: {exc}", file=sys.stderr)
        return 1
    for error in stats.errors:
        print(f"coroscope trace: warning: {error}", file=sys.stderr)
    if stats.records == 0:
        print("coroscope trace: warning: no coroscope records found", file=sys.stderr)
    if builder.evicted:
        print(
            f"coroscope trace: warning: {builder.evicted:,} tasks retired early "
            f"(more than --max-tasks {builder.max_tasks:,} alive at once)",
            file=sys.stderr,
        )
    if output != "-":
        print(
            f"coroscope trace: wrote {output}: {builder.writer.events:,} events on "
            f"{builder.tracks:,} tracks from {stats.records:,} records "
            f"({stats.skipped:,} lines skipped); open it at https://ui.perfetto.dev",
            file=sys.stderr,
        )
    return 0


def _write_file(args: argparse.Namespace, output: str) -> tuple[TraceBuilder, ReadStats]:
    """Write to a temporary file beside ``output`` and rename it: never a half trace."""
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".coroscope-trace-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as raw:
            if output.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as zipped:
                    result = _convert(args, zipped)
            else:
                result = _convert(args, raw)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return result


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_DESCRIPTION = (
    "Convert coroscope logs into a Chrome Trace Event file (JSON object format) that "
    "ui.perfetto.dev and chrome://tracing open: one track per task with its running and "
    "waiting spans, a loop track per event-loop thread with blocked-loop incidents.  "
    "Give the logs of one process in time order."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``trace`` subcommand to the ``coroscope`` command line."""
    parser = subparsers.add_parser(
        "trace", help="a Perfetto/Chrome trace file from coroscope logs", description=_DESCRIPTION
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``coroscope trace`` on its own: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(prog="coroscope trace", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
