"""How long writing a full recorder ring takes, and how much of it the loop thread pays.

    python benchmarks/recorder_dump.py [--locals safe|off]

Fills the ring (the default ``COROSCOPE_RECORDER_BYTES``, a long window) with switches of
100 tasks, then calls ``coroscope.dump()`` on the loop thread: prints the records in the
ring, the time ``dump()`` took (what the loop waits: the incident is handed to the writer
as one item) and the time until the writer had written it all (to a file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

import coroscope
from coroscope import _api


async def fill(switches: int) -> tuple[int, float, float]:
    async def leaf(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def worker() -> None:
        for i in range(switches // 100):
            await leaf(i)

    await asyncio.gather(*(worker() for _ in range(100)))
    session = _api._session
    assert session is not None and session.recorder is not None
    held = len(session.recorder)
    started = time.perf_counter()
    incident = coroscope.dump("benchmark")
    assert incident is not None, "rate-limited: another trigger fired during the fill"
    handed = time.perf_counter() - started
    coroscope.flush(60)
    written = time.perf_counter() - started
    return held, handed, written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locals", default="safe", choices=("safe", "off"))
    parser.add_argument("--switches", type=int, default=300_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "incident.log")
        coroscope.install(
            output=out,
            mode="recorder",
            locals=args.locals,
            recorder_seconds=3600,
            blocked_ms=0,
            stuck_s=0,
            slow_await_ms=1e9,  # no other trigger: the long wait of main on gather
            slow_step_ms=1e9,
        )
        held, handed, written = asyncio.run(fill(args.switches))
        coroscope.uninstall()
        size = os.path.getsize(out)
    print(
        f"python {sys.version.split()[0]}, locals {args.locals}: {held:,} records in the ring; "
        f"dump() took {handed * 1e3:.2f} ms on the loop thread; written ({size / 2**20:.1f} MiB) "
        f"after {written:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
