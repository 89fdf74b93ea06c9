"""The ``coroscope`` command line: ``run`` a program monitored, ``doctor``, ``ctl`` (a running
process's control socket), and the offline tools (``report``, ``trace``)."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence
from typing import Any

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
    run.add_argument(
        "--output",
        help="stderr, stdout, a file path, syslog+tcp://, syslog+udp://, tcp:// or "
        "otlp+http:// URL (COROSCOPE_OUTPUT)",
    )
    run.add_argument(
        "--locals", choices=("safe", "off"), help="capture of locals (COROSCOPE_LOCALS)"
    )
    run.add_argument(
        "--mode", choices=("all", "slow", "watch"), help="what is logged (COROSCOPE_MODE)"
    )
    run.add_argument("--sample", help="fraction of tasks captured, 0..1 (COROSCOPE_SAMPLE)")
    run.add_argument("--service", help="service name for aggregators (COROSCOPE_SERVICE)")
    run.add_argument("--buffer", dest="buffer_size", help="records buffered (COROSCOPE_BUFFER)")
    run.add_argument(
        "--flush-timeout", help="seconds allowed at exit to write (COROSCOPE_FLUSH_TIMEOUT)"
    )
    run.add_argument(
        "--set",
        "-s",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other setting by its field name, e.g. -s slow_step_ms=50 -s exclude=asyncio.*",
    )
    run.add_argument("-m", dest="module", help="run a library module as a script")
    run.add_argument("target", nargs=argparse.REMAINDER, help="script.py [args...]")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ._api import install
    from ._config import ConfigError

    target: list[str] = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    if args.module is None and not target:
        print("coroscope run: give a script path or -m module", file=sys.stderr)
        return 2
    settings: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            print(f"coroscope run: --set takes NAME=VALUE, not {item!r}", file=sys.stderr)
            return 2
        settings[name.strip()] = value
    for name in ("output", "locals", "mode", "sample", "service", "buffer_size", "flush_timeout"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    try:
        install(**settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"coroscope run: {problem}", file=sys.stderr)
        return 2
    except TypeError as exc:
        print(f"coroscope run: {exc}", file=sys.stderr)
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
    from . import _doctor

    _doctor.register(subparsers)
    # Imported here, not caught: a tool that cannot be imported is a broken install, and
    # says so instead of vanishing from the command line.
    from .tools import _ctl, _report_cli, _trace_cli

    _report_cli.register(subparsers)
    _trace_cli.register(subparsers)
    _ctl.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coroscope`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
