"""Where the time goes in one configuration: a py-spy profile of one benchmark workload.

Runs ``workload.py`` exactly as ``bench.py`` does, under ``py-spy record --gil``, which
samples only the thread holding the GIL: in one process, time spent by coroscope's writer
thread is time the event loop cannot run, so the GIL holder is the right thing to sample.
Prints the share of samples per thread, the functions with the most samples of their own,
and coroscope's functions by inclusive share.  Not part of ``benchmarks/run``.

    .venv/bench-3.12/bin/pip install py-spy       # once (a binary wheel from PyPI)
    .venv/bench-3.12/bin/python benchmarks/hotpath.py --config all-safe --workload switch-d1

``sys.monitoring`` callbacks are invisible to ``cProfile`` (they run with profiling
suspended), which is why this uses a sampling profiler.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import CONFIGURATIONS, HERE, WORKLOADS, child_env


def _function(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``: py-spy names a frame by its current line."""
    head, sep, _line = frame.rpartition(":")
    return head + ")" if sep and frame.endswith(")") else frame


def aggregate(raw: Path, top: int) -> str:
    """A plain-text summary of py-spy's raw (collapsed stack) output."""
    own_lines: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = start_up = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(frame.startswith("_find_and_load ") for frame in frames):
            start_up += count  # imports at start-up: not the steady state
            continue
        total += count
        threads[frames[0].split(": ", 1)[-1]] += count
        own_lines[frames[-1]] += count
        own[_function(frames[-1])] += count
        for function in {_function(frame) for frame in frames[1:]}:
            inclusive[function] += count
    if not total:
        return "no samples"

    def table(title: str, counter: collections.Counter[str], keep: bool = True) -> list[str]:
        rows = [(name, n) for name, n in counter.most_common() if keep or _ours(name)]
        return ["", title] + [f"  {n / total:6.1%}  {name}" for name, n in rows[:top]]

    out = [f"{total} samples of the GIL holder ({start_up} more during imports, left out)"]
    out += ["", "by thread:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in threads.most_common()]
    out += table(f"top {top} functions by own samples:", own)
    out += table(f"top {top} lines by own samples:", own_lines)
    ours = collections.Counter({k: v for k, v in inclusive.items() if _ours(k)})
    out += table("coroscope, structlog and orjson functions by inclusive samples:", ours)
    return "\n".join(out)


def _ours(name: str) -> bool:
    return "coroscope/" in name or "structlog/" in name or "orjson" in name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="all-safe", choices=[c.key for c in CONFIGURATIONS])
    parser.add_argument("--workload", default="switch-d1", choices=[w.key for w in WORKLOADS])
    parser.add_argument("--duration", type=float, default=3.0, help="timed phase, seconds")
    parser.add_argument("--rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", help="also save py-spy's raw output to this file")
    parser.add_argument("--bare-python", help="python of the -bare venv (default: derived)")
    args = parser.parse_args(argv)

    config = next(c for c in CONFIGURATIONS if c.key == args.config)
    workload = next(w for w in WORKLOADS if w.key == args.workload)
    bench_python = sys.executable
    bare_python = args.bare_python or str(Path(sys.prefix + "-bare") / "bin" / "python")
    python = bench_python if config.venv == "bench" else bare_python
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        sys.exit(f"py-spy not found: {Path(sys.executable).parent}/pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="coroscope-profile-") as tmp:
        output = Path(tmp) / "records.jsonl"
        raw = Path(tmp) / "profile.raw"
        env = dict(config.env)
        if config.coroscope:
            env["COROSCOPE_OUTPUT"] = str(output)
        cmd = [python, str(HERE / "workload.py"), *workload.args]
        cmd += ["--duration", str(args.duration), "--client-python", bare_python]
        if config.peer != "none":
            cmd += ["--peer", config.peer, "--peer-output", str(output)]
        spy = [py_spy, "record", "--gil", "--threads", "--format", "raw"]
        spy += ["--rate", str(args.rate), "--output", str(raw), "--"]
        subprocess.run(spy + cmd, env=child_env(env), check=True, cwd=HERE)
        if args.keep:
            shutil.copy(raw, args.keep)
        print(f"{config.label} / {workload.label} / {python}")
        print(aggregate(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
