"""The ``coroscope`` command line: ``run`` a program monitored, and offline tools."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help="run a Python program with coroscope monitoring it",
        description=(
            "Run a script or module (like `python script.py` / `python -m module`) with "
            "coroscope installed.  Options not given here come from the COROSCOPE_* "
            "environment variables.  Subprocesses are not monitored unless they inherit "
            "COROSCOPE=1 themselves."
        ),
    )
    run.add_argument("--output", help="stderr, stdout or a file path (COROSCOPE_OUTPUT)")
    run.add_argument(
        "--locals", choices=("safe", "off"), help="capture of locals (COROSCOPE_LOCALS)"
    )
    run.add_argument(
        "--buffer", type=int, dest="buffer_size", help="records buffered (COROSCOPE_BUFFER)"
    )
    run.add_argument(
        "--flush-timeout",
        type=float,
        help="seconds allowed at exit to write (COROSCOPE_FLUSH_TIMEOUT)",
    )
    run.add_argument("-m", dest="module", help="run a library module as a script")
    run.add_argument("target", nargs=argparse.REMAINDER, help="script.py [args...]")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ._config import ConfigError
    from ._install import install

    target: list[str] = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    if args.module is None and not target:
        print("coroscope run: give a script path or -m module", file=sys.stderr)
        return 2
    try:
        install(
            output=args.output,
            locals=args.locals,
            buffer_size=args.buffer_size,
            flush_timeout=args.flush_timeout,
        )
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"coroscope run: {problem}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coroscope run: cannot open the output ({exc})", file=sys.stderr)
        return 2
    if args.module is not None:
        sys.argv = [args.module, *target]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        script = target[0]
        sys.argv = target
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``coroscope`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="coroscope", description="asyncio task-switch capture and analysis"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_run(subparsers)
    for name in ("_report", "_trace"):
        try:
            module = __import__(f"coroscope.{name}", fromlist=["register"])
        except ImportError:
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coroscope`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
