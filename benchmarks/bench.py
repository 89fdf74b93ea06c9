"""Run every benchmark, interleaved and repeated, and write RESULTS.md and ratios.png.

Started by ``benchmarks/run`` (which builds the virtual environments); see README.md in
this directory for the method.  Each measurement is a fresh interpreter running
``workload.py`` under one configuration; for every repetition, every workload and every
Python, all configurations run back to back (in a rotated order), and each is reported as
its ratio to the ``none`` configuration of the *same* repetition.  The median of those
ratios over the repetitions is the result; their min and max are the spread.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"


@dataclass(frozen=True)
class Configuration:
    """One way of running a workload: which environment, which variables, which peer."""

    key: str
    label: str
    venv: str  # "bench" (coroscope installed) or "bare" (same packages, no coroscope)
    env: dict[str, str] = field(default_factory=dict)
    peer: str = "none"
    needs: tuple[str, ...] = ()  # coroscope settings this configuration relies on
    coroscope: bool = False  # writes coroscope records (count them)


_ON = {"COROSCOPE": "1"}

CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration("none", "no monitoring", "bare"),
    Configuration("off", "coroscope installed, not enabled", "bench"),
    Configuration(
        "watch",
        "coroscope watch mode (nothing per switch)",
        "bench",
        {**_ON, "COROSCOPE_MODE": "watch"},
        needs=("COROSCOPE_MODE",),
        coroscope=True,
    ),
    Configuration(
        "slow",
        "coroscope slow mode (nothing slow)",
        "bench",
        {**_ON, "COROSCOPE_MODE": "slow"},
        needs=("COROSCOPE_MODE",),
        coroscope=True,
    ),
    Configuration(
        "slow-py",
        "coroscope slow mode (nothing slow), pure-Python core",
        "bench",
        {**_ON, "COROSCOPE_MODE": "slow", "COROSCOPE_NO_EXTENSIONS": "1"},
        needs=("COROSCOPE_MODE",),  # (COROSCOPE_NO_EXTENSIONS is read by any build)
        coroscope=True,
    ),
    Configuration(
        "all-nolocals",
        "coroscope all, locals off",
        "bench",
        {**_ON, "COROSCOPE_MODE": "all", "COROSCOPE_LOCALS": "off"},
        coroscope=True,
    ),
    Configuration(
        "all-safe",
        "coroscope all, safe locals",
        "bench",
        {**_ON, "COROSCOPE_MODE": "all", "COROSCOPE_LOCALS": "safe"},
        coroscope=True,
    ),
    Configuration(
        "recorder-nolocals",
        "coroscope recorder, locals off",
        "bench",
        {**_ON, "COROSCOPE_MODE": "recorder", "COROSCOPE_LOCALS": "off"},
        needs=("COROSCOPE_MODE",),
        coroscope=True,
    ),
    Configuration(
        "recorder-safe",
        "coroscope recorder, safe locals",
        "bench",
        {**_ON, "COROSCOPE_MODE": "recorder", "COROSCOPE_LOCALS": "safe"},
        needs=("COROSCOPE_MODE",),
        coroscope=True,
    ),
    Configuration(
        "sample",
        "coroscope all, safe locals, 1% of tasks",
        "bench",
        {**_ON, "COROSCOPE_MODE": "all", "COROSCOPE_LOCALS": "safe", "COROSCOPE_SAMPLE": "0.01"},
        needs=("COROSCOPE_SAMPLE",),
        coroscope=True,
    ),
    Configuration("debug", "peer: asyncio debug mode", "bare", {"PYTHONASYNCIODEBUG": "1"}),
    Configuration("setprofile", "peer: sys.setprofile switch logger", "bare", peer="setprofile"),
    Configuration("viztracer", "peer: VizTracer, log_async", "bare", peer="viztracer"),
)


@dataclass(frozen=True)
class Workload:
    """One workload and its ``workload.py`` arguments."""

    key: str
    label: str
    args: tuple[str, ...]
    throughput: bool = False  # metric is a rate (higher is better), else a time per op


WORKLOADS: tuple[Workload, ...] = (
    Workload("switch-d1", "task switches, depth 1", ("--workload", "switch", "--depth", "1")),
    Workload("switch-d5", "task switches, depth 5", ("--workload", "switch", "--depth", "5")),
    Workload("queue", "asyncio.Queue producer/consumer", ("--workload", "queue")),
    Workload("net", "network service (streams)", ("--workload", "net"), throughput=True),
    Workload(
        "aiohttp", "aiohttp service, small handler", ("--workload", "aiohttp"), throughput=True
    ),
    Workload(
        "switch-d1-uvloop",
        "task switches, depth 1, uvloop",
        ("--workload", "switch", "--depth", "1", "--loop", "uvloop"),
    ),
    Workload(
        "net-uvloop",
        "network service, uvloop",
        ("--workload", "net", "--loop", "uvloop"),
        throughput=True,
    ),
)


@dataclass(frozen=True)
class Profile:
    """How long and how often: ``full`` for RESULTS.md, ``quick`` for iterating."""

    name: str
    reps: int
    switch_duration: float
    switch_warmup: float
    net_duration: float
    net_warmup: float
    startup_runs: int


PROFILES = {
    "full": Profile("full", 5, 0.15, 0.05, 0.35, 0.1, 80),
    "quick": Profile("quick", 2, 0.1, 0.03, 0.25, 0.1, 30),
}


@dataclass(frozen=True)
class Interpreter:
    """One Python version and its two virtual environments."""

    version: str
    bench: str  # python of the venv with coroscope installed (non-editable)
    bare: str  # python of the venv with the same packages but no coroscope

    def python(self, venv: str) -> str:
        return self.bench if venv == "bench" else self.bare


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a measurement: ours minus every monitoring switch, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COROSCOPE") and k not in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE")
    }
    env["PYTHONHASHSEED"] = "0"
    env.update(extra)
    return env


def count_records(path: Path) -> tuple[int, int]:
    """(records, records reported dropped) in a JSON-lines output file."""
    if not path.exists():
        return 0, 0
    data = path.read_bytes()
    lines = data.count(b"\n")
    dropped = 0
    marker = b'"event":"dropped"'
    if marker in data:
        for line in data.splitlines():
            if marker in line:
                lines -= 1
                dropped += int(json.loads(line).get("count", 0))
    return lines, dropped


def run_one(
    interp: Interpreter,
    workload: Workload,
    config: Configuration,
    profile: Profile,
    scratch: Path,
) -> dict[str, Any]:
    """One measurement in a fresh interpreter; returns its parsed result (or an error)."""
    output = scratch / f"{config.key}.jsonl"
    output.unlink(missing_ok=True)
    env = dict(config.env)
    if config.coroscope:
        env["COROSCOPE_OUTPUT"] = str(output)
    if workload.throughput:
        timing = ["--duration", str(profile.net_duration), "--warmup", str(profile.net_warmup)]
        timing += ["--client-python", interp.bare]
    else:
        timing = ["--duration", str(profile.switch_duration)]
        timing += ["--warmup", str(profile.switch_warmup)]
    cmd = [interp.python(config.venv), str(HERE / "workload.py"), *workload.args, *timing]
    if config.peer != "none":
        cmd += ["--peer", config.peer, "--peer-output", str(output)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=child_env(env), capture_output=True, timeout=180, cwd=HERE, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 180 s"}
    wall = time.perf_counter() - started
    result: dict[str, Any] | None = None
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith("BENCH "):
            result = json.loads(line[6:])
    if proc.returncode != 0 or result is None:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    expected = "coroscope" if config.coroscope else config.peer
    if expected != "none" and result.get("probe") != expected:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return {"error": f"{expected} was not running: " + " | ".join(tail)}
    result["wall_s"] = wall
    if config.coroscope or config.peer == "setprofile":
        result["records"], result["dropped"] = count_records(output)
    output.unlink(missing_ok=True)
    return result


def preflight(interp: Interpreter, scratch: Path) -> str | None:
    """Why ``COROSCOPE=1`` does not start coroscope in the bench venv, or ``None`` if it does."""
    code = "import sys, coroscope; sys.exit(0 if coroscope.is_installed() else 3)"
    env = child_env({"COROSCOPE": "1", "COROSCOPE_OUTPUT": str(scratch / "preflight.jsonl")})
    proc = subprocess.run([interp.bench, "-c", code], env=env, capture_output=True, check=False)
    if proc.returncode == 0:
        return None
    return proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"


def coroscope_settings(interp: Interpreter) -> list[str]:
    """The ``COROSCOPE_*`` variables the installed coroscope knows."""
    code = "import json, coroscope._config as c; print(json.dumps([s.env for s in c.SETTINGS]))"
    out = subprocess.run(
        [interp.bench, "-c", code], env=child_env({}), capture_output=True, check=True
    )
    known: list[str] = json.loads(out.stdout)
    return known


def package_versions(python: str) -> dict[str, str]:
    """Versions of the packages that matter, as installed in one environment."""
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for name in ('coroscope', 'uvloop', 'viztracer', 'orjson', 'structlog', 'matplotlib'):\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([python, "-c", code], env=child_env({}), capture_output=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


def machine() -> dict[str, Any]:
    """What this machine is: CPU, cores, memory, kernel, load, and the coroscope commit."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    dirty = bool(git("status", "--porcelain", "--", "src"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "system": platform.system(),
        "commit": git("rev-parse", "--short", "HEAD") + (" (src modified)" if dirty else ""),
        "load_before": os.getloadavg(),
    }


def run_extras(interp: Interpreter, profile: Profile) -> dict[str, Any]:
    """Writer throughput, memory under a stalled sink and start-up time, for one Python."""
    extras: dict[str, Any] = {}
    jobs = {
        "writer": ["writer"],
        "capture": ["capture"],
        "stalled": ["stalled"],
        "stalled-8192": ["stalled", "--capacity", "8192"],
    }
    for name, job in jobs.items():
        cmd = [interp.bench, str(HERE / "extras.py"), *job]
        if profile.name == "quick":
            cmd.append("--quick")
        proc = subprocess.run(
            cmd, env=child_env({}), capture_output=True, timeout=300, cwd=HERE, check=False
        )
        found = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("BENCH ")]
        if proc.returncode != 0 or not found:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
            extras[name] = {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
        else:
            extras[name] = json.loads(found[-1][6:])
    from extras import measure_startup

    extras["startup"] = measure_startup(interp.bare, interp.bench, profile.startup_runs)
    return extras


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python",
        action="append",
        required=True,
        metavar="VERSION:BENCH_PYTHON:BARE_PYTHON",
        help="an interpreter to measure (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--out", default=str(HERE), help="where RESULTS.md and ratios.png go")
    parser.add_argument("--only", help="comma-separated workload keys to run (default: all)")
    parser.add_argument(
        "--configs",
        help="comma-separated configuration keys to run (default: all; `none` is always run)",
    )
    args = parser.parse_args(argv)
    configurations = CONFIGURATIONS
    if args.configs:
        wanted = {"none", *args.configs.split(",")}
        unknown = wanted - {c.key for c in CONFIGURATIONS}
        if unknown:
            parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
        configurations = tuple(c for c in CONFIGURATIONS if c.key in wanted)

    profile = PROFILES["quick" if args.quick else "full"]
    interps = []
    for spec in args.python:
        version, bench, bare = spec.split(":")
        interps.append(Interpreter(version, bench, bare))
    workloads = WORKLOADS
    if args.only:
        keep = set(args.only.split(","))
        unknown = keep - {w.key for w in WORKLOADS}
        if unknown:
            parser.error(
                f"unknown workload(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(w.key for w in WORKLOADS)}"
            )
        workloads = tuple(w for w in WORKLOADS if w.key in keep)

    started = time.time()
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": asdict(profile),
        "machine": machine(),
        "pythons": {},
        "configurations": [asdict(c) for c in configurations],
        "workloads": [asdict(w) for w in workloads],
    }
    for interp in interps:
        full_version = subprocess.run(
            [interp.bench, "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["pythons"][interp.version] = {
            "version": full_version,
            "settings": coroscope_settings(interp),
            "packages": package_versions(interp.bench),
        }

    runs: list[dict[str, Any]] = []
    scratch_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    scratch = Path(tempfile.mkdtemp(prefix="coroscope-bench-", dir=scratch_root))
    for interp in interps:
        problem = preflight(interp, scratch)
        if problem is not None:
            shutil.rmtree(scratch, ignore_errors=True)
            print(
                f"COROSCOPE=1 does not start coroscope with Python {interp.version} "
                f"({interp.bench}):\n{problem}",
                file=sys.stderr,
            )
            return 1
    total = profile.reps * len(interps) * len(workloads) * len(configurations)
    done = 0
    try:
        for rep in range(profile.reps):
            for interp in interps:
                for w_index, workload in enumerate(workloads):
                    shift = (rep + w_index) % len(configurations)
                    order = configurations[shift:] + configurations[:shift]
                    for config in order:
                        result = run_one(interp, workload, config, profile, scratch)
                        result.pop("python", None)  # the full version: in info
                        runs.append(
                            {
                                "python": interp.version,
                                "workload": workload.key,
                                "config": config.key,
                                "rep": rep,
                                **result,
                            }
                        )
                        done += 1
                        if "error" in result:
                            print(
                                f"  {interp.version} {workload.key} {config.key}: "
                                f"{result['error']}",
                                file=sys.stderr,
                            )
                print(
                    f"[{time.time() - started:6.0f} s] rep {rep + 1}/{profile.reps} "
                    f"Python {interp.version}: {done}/{total} measurements",
                    file=sys.stderr,
                )
        extras = {}
        for interp in interps:
            print(f"extras for Python {interp.version}", file=sys.stderr)
            extras[interp.version] = run_extras(interp, profile)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    info["machine"]["load_after"] = os.getloadavg()
    info["runtime_s"] = round(time.time() - started, 1)
    data = {"info": info, "runs": runs, "extras": extras}
    WORK.mkdir(exist_ok=True)
    (WORK / "results.json").write_text(json.dumps(data, indent=1))

    from report import write_report

    out = Path(args.out)
    write_report(data, out / "RESULTS.md", out / "ratios.png")
    print(f"wrote {out / 'RESULTS.md'} and {out / 'ratios.png'} in {info['runtime_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
