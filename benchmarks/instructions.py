"""Instructions per task switch under callgrind: repeatable where timings are not.

    python benchmarks/instructions.py [--python PY] [--modes none,watch,slow,all]

A mode may carry options after ``+``: ``py`` runs the pure-Python capture core
(``COROSCOPE_NO_EXTENSIONS=1``) instead of the native one, ``nolocals`` turns locals off
(``COROSCOPE_LOCALS=off``): ``--modes none,slow,slow+py,all+nolocals,all+nolocals+py``.

Runs a small program (50 tasks looping ``await asyncio.sleep(0)``, or ``asyncio.Queue``
items with ``--workload queue``) under ``valgrind --tool=callgrind`` twice per mode, with
``--small`` and ``--large`` iterations, and divides the difference in instructions by the
difference in switches: start-up and shut-down cancel out.  The watchdog is off
(``COROSCOPE_BLOCKED_MS=0``, ``COROSCOPE_STUCK_S=0``): it ticks in wall time, which valgrind
stretches about fifty times.  ``PY`` must have coroscope installed (``COROSCOPE=1`` starts it).
Prints one line per mode and its ratio to ``none``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

PROGRAMS = {
    "switch": (
        "import asyncio, sys\n"
        "K = int(sys.argv[1])\n"
        "async def worker():\n"
        "    for _ in range(K):\n"
        "        await asyncio.sleep(0)\n"
        "async def main():\n"
        "    await asyncio.gather(*(worker() for _ in range(50)))\n"
        "asyncio.run(main())\n",
        50,
    ),
    "queue": (
        "import asyncio, sys\n"
        "K = int(sys.argv[1])\n"
        "async def producer(q):\n"
        "    for i in range(K):\n"
        "        await q.put(i)\n"
        "    await q.put(None)\n"
        "async def consumer(q):\n"
        "    while (await q.get()) is not None:\n"
        "        pass\n"
        "async def main():\n"
        "    qs = [asyncio.Queue(8) for _ in range(4)]\n"
        "    await asyncio.gather(*(producer(q) for q in qs), *(consumer(q) for q in qs))\n"
        "asyncio.run(main())\n",
        4,
    ),
}
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(python: str, program: str, n: int, mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COROSCOPE")}
    mode, *options = mode.split("+")
    if "py" in options:
        env["COROSCOPE_NO_EXTENSIONS"] = "1"
    if "nolocals" in options:
        env["COROSCOPE_LOCALS"] = "off"
    if mode != "none":
        env.update(
            COROSCOPE="1",
            COROSCOPE_MODE=mode,
            COROSCOPE_OUTPUT=os.devnull,
            COROSCOPE_BLOCKED_MS="0",
            COROSCOPE_STUCK_S="0",
        )
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, program, str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(out.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--modes", default="none,watch,slow")
    parser.add_argument("--workload", choices=sorted(PROGRAMS), default="switch")
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=300)
    args = parser.parse_args(argv)
    source, per_iteration = PROGRAMS[args.workload]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    try:
        per_op: dict[str, float] = {}
        ops = (args.large - args.small) * per_iteration
        for mode in args.modes.split(","):
            small = instructions(args.python, f.name, args.small, mode)
            large = instructions(args.python, f.name, args.large, mode)
            per_op[mode] = (large - small) / ops
            base = per_op.get("none")
            ratio = f"  {per_op[mode] / base:.3f}x of none" if base else ""
            print(f"{mode:22} {per_op[mode]:12,.0f} instructions per operation{ratio}", flush=True)
    finally:
        os.unlink(f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
