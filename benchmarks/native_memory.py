"""Memory of the capture core over many switches and many install/uninstall cycles.

    python benchmarks/native_memory.py [--switches N] [--cycles N] [--mode slow]

Prints the process's RSS and the bytes tracemalloc sees at checkpoints: a reference leak
in the callbacks (a task state, a frame, an awaited object kept once per switch) shows as
growth that follows the count.  Run it once per implementation
(``COROSCOPE_NO_EXTENSIONS=1`` for pure Python).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc

import coroscope
from coroscope import _implementation


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def checkpoint(label: str, done: int) -> None:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else -1
    print(f"{label:10} {done:>12,}  rss {rss_kib():>9,} KiB  traced {traced:>12,} B", flush=True)


async def switch(total: int, tasks: int, every: int) -> None:
    per_task = total // tasks
    state = {"done": 0}

    async def leaf(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def worker() -> None:
        for i in range(per_task):
            await leaf(i)  # one awaited coroutine per switch: its PY_START too
            state["done"] += 1
            if state["done"] % every == 0:
                checkpoint("switches", state["done"])

    await asyncio.gather(*(worker() for _ in range(tasks)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=10_000_000)
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--mode", default="slow")
    parser.add_argument("--tracemalloc", action="store_true", help="trace (slower)")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, implementation {_implementation.selected()}")
    if args.tracemalloc:
        tracemalloc.start()
    settings = {"output": "/dev/null", "mode": args.mode, "blocked_ms": 0, "stuck_s": 0}
    started = time.perf_counter()
    for i in range(args.cycles):
        coroscope.install(**settings)
        coroscope.uninstall()
        if (i + 1) % max(1, args.cycles // 5) == 0:
            checkpoint("cycles", i + 1)
    print(f"{args.cycles:,} cycles in {time.perf_counter() - started:.1f} s")
    coroscope.install(**settings)
    started = time.perf_counter()
    asyncio.run(switch(args.switches, 100, max(1, args.switches // 10)))
    print(f"{args.switches:,} switches in {time.perf_counter() - started:.1f} s")
    coroscope.uninstall()
    checkpoint("end", args.switches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
