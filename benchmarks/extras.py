"""The measurements beside the main table: writer throughput, capture cost alone, memory
under a stalled sink and start-up time.  ``python extras.py writer|capture|stalled
[--quick]`` runs one in the coroscope venv and prints one ``BENCH {json}`` line;
``measure_startup`` is called by ``bench.py``.

``writer``
    How many records per second coroscope's writer renders (structlog processor chain,
    ``orjson``) and writes.  Real records are captured from the ``switch`` workload (depth
    1 and 5, safe locals) into a buffer large enough to hold them all while the sink is
    held shut; then the sink is opened and the time to render and write everything still
    buffered is measured (``coroscope.flush``), as CPU time of the process (the main
    thread only waits meanwhile, so it is the writer thread's).  The sink appends to a real
    file in a temporary directory (on ``/dev/shm`` where there is one, like the
    measurements).  The records of the first batch, rendered before the sink was opened,
    are not counted.
``capture``
    The cost of capture alone, without the writer's work: time per switch of the
    ``switch`` workload with coroscope installed on a stalled sink and a buffer large
    enough to hold every record, as a ratio of CPU time per switch to the same workload
    unmonitored.
``stalled``
    Memory when the output stops accepting writes: a sink whose ``write_batch`` never
    returns.  The ``switch`` workload (depth 5, safe locals) runs for a while without
    monitoring (to warm the allocator), then with coroscope installed on the stalled sink;
    the resident set size is read after a short and after a long phase.  With a bounded
    buffer the growth must stop at the bound: the long phase must not grow further once the
    buffer is full.  ``bench.py`` runs it with the default buffer and with 8192 records,
    each in its own process.
``startup`` (``measure_startup``)
    ``python -c pass`` in a venv without coroscope, in one with coroscope installed but not
    enabled, and with ``COROSCOPE=1`` (output to ``/dev/null``), interleaved, many times;
    the medians and their differences.  Also the cost of executing the ``.pth`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def rss_bytes() -> int:
    """The current resident set size of this process."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class GateSink:
    """A sink that holds its first batch until :attr:`gate` is set, then appends to a file."""

    def __init__(self, path: str) -> None:
        self.name = "gate"
        self.gate = threading.Event()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.first_batch = -1
        self.lines = 0
        self.bytes = 0

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        if self.first_batch < 0:
            self.first_batch = len(records)
        self.gate.wait()
        data = b"\n".join(records) + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.lines += len(records)
        self.bytes += len(data)

    def close(self) -> None:
        pass


class StalledSink:
    """A sink whose writes never return: the output has stopped taking data."""

    def __init__(self) -> None:
        self.name = "stalled"
        self._never = threading.Event()

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        self._never.wait()

    def close(self) -> None:
        pass


def _switches(tasks: int, depth: int, seconds: float) -> int:
    from workload import switch_phase

    return asyncio.run(switch_phase(tasks, depth, seconds))


def writer_throughput(quick: bool) -> dict[str, Any]:
    """Records per second rendered and written, for depth-1 and depth-5 records."""
    import coroscope
    from coroscope._api import _install
    from coroscope._config import Config

    out: dict[str, Any] = {}
    seconds = 0.15 if quick else 0.4
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # as bench.py's outputs
    with tempfile.TemporaryDirectory(prefix="coroscope-writer-", dir=shm) as tmp:
        for depth in (1, 5):
            sink = GateSink(os.path.join(tmp, f"d{depth}.jsonl"))
            config = Config(output="unused", locals="safe", buffer_size=2_000_000)
            if not _install(config, (), sink=sink):
                raise RuntimeError("coroscope could not be installed")
            switches = _switches(500, depth, seconds)
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            sink.gate.set()
            if not coroscope.flush(timeout=120.0):
                raise RuntimeError("flush did not finish")
            # The main thread only waits meanwhile: the process's CPU time is the writer's.
            cpu = time.process_time() - c0
            elapsed = time.perf_counter() - t0
            coroscope.uninstall()
            counted = sink.lines - max(sink.first_batch, 0)
            out[f"depth{depth}"] = {
                "records": counted,
                "switches": switches,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "records_per_s": counted / cpu if cpu > 0 else 0.0,
                "us_per_record": cpu / counted * 1e6 if counted else 0.0,
                "bytes_per_record": sink.bytes / sink.lines if sink.lines else 0.0,
            }
            os.close(sink.fd)
    return out


def capture_cost(quick: bool) -> dict[str, Any]:
    """Time per switch with capture alone: the writer is held by a stalled sink.

    The difference between this ratio and the full configuration's ratio in the main table
    is what the writer thread costs (rendering and writing, under the GIL).  Measured in
    one process, alternating with unmonitored phases; medians of the ratios.
    """
    import coroscope
    from coroscope import _api as install_module
    from coroscope._api import _install
    from coroscope._config import Config

    seconds = 0.1 if quick else 0.15
    reps = 2 if quick else 3

    def per_switch(depth: int) -> float:
        c0 = time.process_time()  # CPU time, as in the main table (the writer is idle)
        switches = _switches(1000, depth, seconds)
        return (time.process_time() - c0) / switches * 1e6

    out: dict[str, Any] = {}
    for depth in (1, 5):
        _switches(1000, depth, 0.05)
        ratios: dict[str, list[float]] = {"off": [], "safe": []}
        bases = []
        for _ in range(reps):
            for local_mode in ("off", "safe"):
                base = per_switch(depth)
                bases.append(base)
                config = Config(
                    output="unused", locals=local_mode, buffer_size=5_000_000, flush_timeout=0.0
                )
                if not _install(config, (), sink=StalledSink()):
                    raise RuntimeError("coroscope could not be installed")
                _switches(1000, depth, 0.02)
                ratios[local_mode].append(per_switch(depth) / base)
                # The stalled writer keeps its buffer alive: empty it, or the records held
                # would slow every later phase (the garbage collector traverses them).
                session = install_module._session
                if session is not None:
                    session.writer.buffer.clear()
                coroscope.uninstall(timeout=0.0)
                gc.collect()
        out[f"depth{depth}"] = {
            "base_us": statistics.median(bases),
            "locals_off": statistics.median(ratios["off"]),
            "locals_safe": statistics.median(ratios["safe"]),
        }
    return out


def stalled_memory(quick: bool, capacity: int | None) -> dict[str, Any]:
    """Resident memory growth with a sink that never returns, for one buffer size."""
    import coroscope
    from coroscope import _api as install_module
    from coroscope._api import _install
    from coroscope._config import Config

    short, long = (0.5, 1.2) if quick else (1.0, 2.5)
    _switches(1000, 5, 0.3)  # warm the allocator and the workload without monitoring
    gc.collect()
    base = rss_bytes()
    if capacity is None:
        capacity = Config().buffer_size
    config = Config(output="unused", locals="safe", buffer_size=capacity, flush_timeout=0.0)
    if not _install(config, (), sink=StalledSink()):
        raise RuntimeError("coroscope could not be installed")
    switches = _switches(1000, 5, short)
    after_short = rss_bytes()
    switches += _switches(1000, 5, long - short)
    after_long = rss_bytes()
    session = install_module._session
    buffered = dropped = -1
    if session is not None:
        buffer = session.writer.buffer
        buffered = len(buffer)
        dropped = int(getattr(buffer, "_dropped", -1))
    # The stalled writer never finishes: stop without waiting (it warns on stderr).
    coroscope.uninstall(timeout=0.0)
    return {
        "capacity": capacity,
        "switches": switches,
        "growth_short_mib": (after_short - base) / 2**20,
        "growth_long_mib": (after_long - base) / 2**20,
        "short_s": short,
        "long_s": long,
        "buffered": buffered,
        "dropped": dropped,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


STARTUP_PROGRAMS = {"pass": "pass", "asyncio": "import asyncio"}


def measure_startup(bare: str, bench: str, runs: int) -> dict[str, Any]:
    """Median wall time of ``python -c pass`` and ``python -c "import asyncio"``: without
    coroscope, installed (not enabled) and enabled (``COROSCOPE=1``), all interleaved."""
    enabled = {"COROSCOPE": "1", "COROSCOPE_OUTPUT": os.devnull}
    variants = {
        f"{who}/{prog}": ([python, "-c", code], extra)
        for prog, code in STARTUP_PROGRAMS.items()
        for who, python, extra in (
            ("bare", bare, {}),
            ("installed", bench, {}),
            ("enabled", bench, enabled),
        )
    }
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COROSCOPE") and k != "PYTHONASYNCIODEBUG"
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for i in range(runs + 3):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:  # no variant always runs first
            cmd, extra = variants[name]
            env = {**base_env, **extra}
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True)
            elapsed = time.perf_counter() - t0
            if i >= 3:  # the first rounds warm the page cache
                times[name].append(elapsed * 1e3)
    medians = {name: statistics.median(values) for name, values in times.items()}
    pth = _pth_line_cost(bench)
    return {
        "runs": runs,
        "median_ms": medians,
        "deltas_ms": {
            prog: {
                "installed_minus_bare": medians[f"installed/{prog}"] - medians[f"bare/{prog}"],
                "enabled_minus_installed": medians[f"enabled/{prog}"]
                - medians[f"installed/{prog}"],
                "enabled_minus_bare": medians[f"enabled/{prog}"] - medians[f"bare/{prog}"],
            }
            for prog in STARTUP_PROGRAMS
        },
        "pth_line_us": pth,
    }


def _pth_line_cost(bench: str) -> float:
    """Microseconds to execute the installed ``.pth`` line with ``COROSCOPE`` unset."""
    code = (
        "import os, sys, sysconfig, timeit\n"
        "os.environ.pop('COROSCOPE', None)\n"
        "path = os.path.join(sysconfig.get_paths()['purelib'], 'coroscope.pth')\n"
        "line = [l for l in open(path) if l.startswith('import')][0]\n"
        "code = compile(line, path, 'exec')\n"
        "n = 100000\n"
        "print(min(timeit.repeat(lambda: exec(code, {}), number=n, repeat=5)) / n * 1e6)\n"
    )
    try:
        out = subprocess.run([bench, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())
    except (subprocess.CalledProcessError, ValueError):
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=("writer", "stalled", "capture", "startup"))
    parser.add_argument("--bare", help="startup: a python without coroscope")
    parser.add_argument("--bench", help="startup: a python with coroscope installed")
    parser.add_argument("--runs", type=int, default=40, help="startup: rounds")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--capacity", type=int, help="stalled: buffer size (default: coroscope's)")
    args = parser.parse_args(argv)
    if args.which == "writer":
        result = writer_throughput(args.quick)
    elif args.which == "capture":
        result = capture_cost(args.quick)
    elif args.which == "startup":
        result = measure_startup(args.bare, args.bench, args.runs)
    else:
        result = stalled_memory(args.quick, args.capacity)
    result["python"] = sys.version.split()[0]
    sys.stdout.write("BENCH " + json.dumps(result) + "\n")
    sys.stdout.flush()
    # A stalled writer thread is still blocked: leave without waiting for it.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
