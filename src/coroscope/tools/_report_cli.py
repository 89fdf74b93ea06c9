"""The ``coroscope report`` command: arguments, reading, printing."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import orjson

from ._logread import LogReader, Progress, check_inputs
from ._report import ReportBuilder
from ._report_items import SITE_ORDERS, TASK_ORDERS
from ._report_text import render_text

__all__ = ["main", "register", "run"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="coroscope logs (plain or gzip; '-' for stdin)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--top", type=_positive, default=20, metavar="N", help="rows per table (default 20)"
    )
    parser.add_argument(
        "--innermost",
        action="store_true",
        help="locate waits at the innermost frame, even inside asyncio (default: the "
        "innermost frame outside asyncio's own files)",
    )
    parser.add_argument(
        "--sort-sites",
        choices=tuple(SITE_ORDERS),
        default="total",
        help="order of the await-site table (default: total wait)",
    )
    parser.add_argument(
        "--sort-tasks",
        choices=tuple(TASK_ORDERS),
        default="run",
        help="order of the task table (default: run time)",
    )
    parser.add_argument(
        "--max-tasks",
        type=_positive,
        default=100_000,
        metavar="N",
        help="live tasks tracked at once; the least recently seen are retired beyond it "
        "(default 100000)",
    )
    parser.add_argument(
        "--incident",
        type=int,
        metavar="ID",
        help="only the records written for incident ID (recorder mode)",
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


def run(args: argparse.Namespace) -> int:
    """Run ``coroscope report`` with parsed arguments; returns the exit code."""
    problems = check_inputs(args.files)
    if problems:
        for problem in problems:
            print(f"coroscope report: {problem}", file=sys.stderr)
        return 1
    progress = Progress(
        enabled=_want_progress(args.progress),
        label="coroscope report",
        final=args.progress is True,
    )
    reader = LogReader(args.files, progress=progress)
    builder = ReportBuilder(
        top=args.top,
        innermost=args.innermost,
        max_tasks=args.max_tasks,
        sort_tasks=args.sort_tasks,
        sort_sites=args.sort_sites,
        incident=args.incident,
    )
    feed = builder.feed
    try:
        for record in reader:
            feed(record)
    except KeyboardInterrupt:
        print("\ncoroscope report: interrupted", file=sys.stderr)
        return 130
    result = builder.result(reader.stats, args.files)
    for error in reader.stats.errors:
        print(f"coroscope report: warning: {error}", file=sys.stderr)
    if reader.stats.records == 0:
        print("coroscope report: warning: no coroscope records found", file=sys.stderr)
    try:
        if args.json:
            sys.stdout.flush()
            sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(render_text(result))
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): not an error; silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


_DESCRIPTION = (
    "Summarise coroscope logs: await sites (total, p50/p99 wait), slowest steps, per-task "
    "switches and run/wait time, blocked-loop incidents, recorder-mode incidents and what "
    "led up to each, and dropped records.  Reads plain "
    "or gzip JSON lines ('-' for stdin), skipping and counting lines that are not "
    "coroscope records.  Memory stays bounded on inputs of any size."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand to the ``coroscope`` command line."""
    parser = subparsers.add_parser(
        "report", help="summary tables from coroscope logs", description=_DESCRIPTION
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``coroscope report`` on its own: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(prog="coroscope report", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
