"""``coroscope doctor``: what a person deploying coroscope wants to know, checked.

It reports the version, the Python, the implementation that would run, the
``sys.monitoring`` tool id it would take, whether ``COROSCOPE=1`` starts it in this
interpreter, every effective setting and where it came from, whether the output can be
reached, and what coroscope adds to start-up (measured in fresh interpreters).  It exits
with 1 when something would stop coroscope working: a bad setting, no free tool id, an
output that cannot be opened or reached, or ``COROSCOPE`` set where it has no effect.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from typing import Any

from . import _implementation
from ._config import SETTINGS, Config, ConfigError
from ._version import __version__
from .sinks._outputs import parse_output

__all__ = ["diagnose", "register", "run"]

_TOOL_IDS = (3, 4)  # as coroscope.capture takes them (not imported: it imports asyncio)


class _Report:
    """Findings, in order: (label, value) lines and the problems found."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.problems: list[str] = []

    def fact(self, key: str, value: Any) -> None:
        self.facts[key] = value

    def problem(self, text: str) -> None:
        self.problems.append(text)


def _tool_id(report: _Report) -> None:
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        report.fact("tool_id", None)
        report.problem("this Python has no sys.monitoring (coroscope needs 3.12 or newer)")
        return
    running = [i for i in _TOOL_IDS if monitoring.get_tool(i) == "coroscope"]
    if running:  # COROSCOPE=1 started coroscope in this very process
        report.fact("tool_id", running[0])
        return
    free = [i for i in _TOOL_IDS if monitoring.get_tool(i) is None]
    report.fact("tool_id", free[0] if free else None)
    if not free:
        report.problem("sys.monitoring tool ids 3 and 4 are both taken in this process")


def _startup_files(report: _Report, environ: Mapping[str, str]) -> None:
    purelib = sysconfig.get_paths()["purelib"]
    installed = all(
        os.path.exists(os.path.join(purelib, name))
        for name in ("coroscope.pth", "_coroscope_start.py")
    )
    report.fact("startup_files", purelib if installed else None)
    value = environ.get("COROSCOPE", "")
    report.fact("COROSCOPE", value or None)
    try:
        from ._config import is_enabled

        enabled = is_enabled(environ)
    except ValueError as exc:
        report.problem(f"COROSCOPE={value!r} is not valid ({exc})")
        return
    if enabled and not installed:
        report.problem(
            "COROSCOPE is set but coroscope's start-up files are not in this interpreter's "
            f"site-packages ({purelib}): install coroscope with pip (not editable)"
        )
    if enabled and sys.flags.ignore_environment:
        report.problem("this interpreter ignores the environment (-E/-I): COROSCOPE has no effect")


def _output(report: _Report, config: Config) -> None:
    spec = parse_output(config.output)
    report.fact("output", config.output)
    if spec.kind in ("stderr", "stdout"):
        report.fact("output_reachable", True)
        return
    if spec.kind == "file":
        path = os.path.abspath(os.path.expanduser(spec.path))
        folder = os.path.dirname(path)
        ok = os.access(path, os.W_OK) if os.path.exists(path) else os.access(folder, os.W_OK)
        report.fact("output_reachable", ok)
        if not ok:
            report.problem(f"the output file {path} cannot be written")
        return
    if spec.kind == "syslog+udp":
        try:
            socket.getaddrinfo(spec.host, spec.port, type=socket.SOCK_DGRAM)
            report.fact("output_reachable", "address resolved (UDP gives no answer)")
        except OSError as exc:
            report.fact("output_reachable", False)
            report.problem(f"{config.output}: {exc}")
        return
    try:
        with socket.create_connection((spec.host, spec.port), timeout=config.net_timeout):
            pass
        report.fact("output_reachable", True)
    except OSError as exc:
        report.fact("output_reachable", False)
        report.problem(f"{config.output} cannot be reached ({type(exc).__name__}: {exc})")


def _startup_cost(runs: int) -> dict[str, float]:
    """Median milliseconds ``COROSCOPE=1`` adds to ``python -c pass`` and to
    ``python -c "import asyncio"``, in fresh interpreters, interleaved."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COROSCOPE")}
    on = {**base, "COROSCOPE": "1", "COROSCOPE_OUTPUT": os.devnull}
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for program in ("pass", "import asyncio"):
            for label, env in (("off", base), ("on", on)):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", program], env=env, check=False)
                samples.setdefault(f"{program}/{label}", []).append(
                    (time.perf_counter() - t0) * 1e3
                )
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "pass_ms": round(med["pass/off"], 1),
        "pass_added_ms": round(med["pass/on"] - med["pass/off"], 1),
        "asyncio_ms": round(med["import asyncio/off"], 1),
        "asyncio_added_ms": round(med["import asyncio/on"] - med["import asyncio/off"], 1),
    }


def diagnose(environ: Mapping[str, str], overrides: Mapping[str, Any], timing_runs: int) -> _Report:
    """Every check, with ``overrides`` as explicit settings (as ``coroscope run -s``)."""
    report = _Report()
    report.fact("version", __version__)
    report.fact("python", f"{sys.implementation.name} {sys.version.split()[0]} ({sys.executable})")
    report.fact("implementation", _implementation.selected(environ))
    report.fact("implementations", list(_implementation.available()))
    _tool_id(report)
    _startup_files(report, environ)
    try:
        config = Config.from_env(environ, **overrides)
    except (ConfigError, TypeError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        for problem in problems:
            report.problem(problem)
        config = None
    if config is not None:
        sources = Config.sources(environ, **overrides)
        report.fact(
            "settings",
            {
                s.field: {"value": getattr(config, s.field), "from": sources[s.field], "env": s.env}
                for s in SETTINGS
            },
        )
        _output(report, config)
    if timing_runs > 0:
        report.fact("startup", _startup_cost(timing_runs))
    return report


def _text(report: _Report) -> str:
    facts = report.facts
    lines = [
        f"coroscope {facts['version']}",
        f"python          {facts['python']}",
        f"implementation  {facts['implementation']} (available: "
        f"{', '.join(facts['implementations'])})",
        f"tool id         {facts['tool_id'] if facts['tool_id'] is not None else 'none free'}",
        "start-up files  "
        + (facts["startup_files"] or "not installed (COROSCOPE=1 would do nothing here)"),
        f"COROSCOPE       {facts['COROSCOPE'] or '(not set)'}",
    ]
    if "output" in facts:
        reachable = facts["output_reachable"]
        state = reachable if isinstance(reachable, str) else ("ok" if reachable else "NO")
        lines.append(f"output          {facts['output']} ({state})")
    if "startup" in facts:
        st = facts["startup"]
        lines.append(
            f"start-up        python -c pass {st['pass_ms']} ms, +{st['pass_added_ms']} ms "
            f"with COROSCOPE=1; import asyncio {st['asyncio_ms']} ms, "
            f"+{st['asyncio_added_ms']} ms"
        )
    settings = facts.get("settings")
    if settings:
        lines.append("settings")
        width = max(len(env["env"]) for env in settings.values())
        for value in settings.values():
            shown = value["value"]
            if isinstance(shown, tuple):
                shown = ",".join(shown) if len(shown) <= 4 else f"{len(shown)} entries"
            lines.append(f"  {value['env']:<{width}}  {shown!s:<24} ({value['from']})")
    if report.problems:
        lines.append("problems")
        lines.extend(f"  - {p}" for p in report.problems)
    else:
        lines.append("no problems found")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """The ``coroscope doctor`` command."""
    overrides: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            print(f"coroscope doctor: --set takes NAME=VALUE, not {item!r}", file=sys.stderr)
            return 2
        overrides[name.strip()] = value
    report = diagnose(os.environ, overrides, 0 if args.no_timing else args.runs)
    if args.json:
        import orjson

        payload = {**report.facts, "problems": report.problems}
        sys.stdout.write(orjson.dumps(payload, default=str).decode() + "\n")
    else:
        sys.stdout.write(_text(report))
    return 1 if report.problems else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``coroscope doctor`` to the command line."""
    parser = subparsers.add_parser(
        "doctor",
        help="check this installation and its settings",
        description=(
            "Report coroscope's version, Python, implementation, tool id, start-up files, "
            "effective settings (and where each comes from), whether the output can be "
            "reached and what COROSCOPE=1 adds to start-up.  Exits with 1 when something "
            "would stop coroscope working."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-timing", action="store_true", help="do not measure start-up")
    parser.add_argument("--runs", type=int, default=7, help="start-up measurements (default 7)")
    parser.add_argument(
        "--set",
        "-s",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting by its field name, as `coroscope run -s` takes it",
    )
    parser.set_defaults(func=run)
