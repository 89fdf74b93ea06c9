"""Load client for the ``net`` workload: closed-loop request/response over loopback.

Opens ``--connections`` connections to ``127.0.0.1:--port`` (loopback only), each with one
request in flight at a time (``GET <key>\\n``, answered by one line; with ``--http``, an
HTTP/1.1 keep-alive ``GET /item/<key>``, answered with a ``Content-Length`` body).  After
``--warmup`` seconds it counts, for ``--duration`` seconds, the requests completed and their
latencies (send to last byte of the response), then stops sending and closes.  Bounded in count and
time: it never runs for longer than warm-up + duration + a few seconds.

Written with asyncio protocols, on uvloop when installed, so that the client is cheap and
the server under test is the bottleneck.  Prints one JSON object: ``rps``, ``requests``,
``p50_us``, ``p90_us``, ``p99_us``, ``max_us``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from array import array
from typing import Any

HOST = "127.0.0.1"
MAX_REQUESTS = 10_000_000  # a hard bound on what one run may send


class Window:
    """The measurement window, shared by all connections."""

    def __init__(self) -> None:
        self.sending = True
        self.counting = False
        self.sent = 0
        self.latencies_ns: array[int] = array("q")


class Connection(asyncio.Protocol):
    """One connection with one outstanding request."""

    def __init__(
        self, window: Window, index: int, done: asyncio.Future[None], http: bool = False
    ) -> None:
        self.http = http
        self.window = window
        self.index = index
        self.done = done
        self.transport: Any = None
        self.pending = b""
        self.sent_at = 0
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports do not subclass asyncio's
        self.send()

    def send(self) -> None:
        window = self.window
        if not window.sending or window.sent >= MAX_REQUESTS:
            if not self.done.done():
                self.done.set_result(None)
            return
        window.sent += 1
        self.counted = window.counting
        self.sent_at = time.perf_counter_ns()
        key = (self.index * 7919 + window.sent) % 1000
        if self.http:
            self.transport.write(b"GET /item/%d HTTP/1.1\r\nHost: bench\r\n\r\n" % key)
        else:
            self.transport.write(b"GET %d\n" % key)

    def _complete(self) -> bool:
        pending = self.pending
        if not self.http:
            return pending.endswith(b"\n")
        end = pending.find(b"\r\n\r\n")
        if end < 0:
            return False
        length = 0
        for line in pending[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return len(pending) >= end + 4 + length

    def data_received(self, data: bytes) -> None:
        self.pending += data
        if not self._complete():
            return
        now = time.perf_counter_ns()
        self.pending = b""
        if self.counted and self.window.counting:
            self.window.latencies_ns.append(now - self.sent_at)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def percentile(sorted_values: list[int], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


async def run(
    port: int, connections: int, warmup: float, duration: float, http: bool = False
) -> dict[str, Any]:
    """Load the server; return throughput and latency over the measurement window."""
    loop = asyncio.get_running_loop()
    window = Window()
    transports = []
    finished = []
    for index in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            functools.partial(Connection, window, index, done, http), HOST, port
        )
        transports.append(transport)
        finished.append(done)
    await asyncio.sleep(warmup)
    window.counting = True
    start = time.perf_counter()
    await asyncio.sleep(duration)
    window.counting = False
    elapsed = time.perf_counter() - start
    window.sending = False
    await asyncio.wait(finished, timeout=5.0)
    for transport in transports:
        transport.close()
    latencies = sorted(window.latencies_ns)
    return {
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "window_s": elapsed,
        "connections": connections,
        "p50_us": percentile(latencies, 0.50) / 1e3,
        "p90_us": percentile(latencies, 0.90) / 1e3,
        "p99_us": percentile(latencies, 0.99) / 1e3,
        "max_us": (latencies[-1] / 1e3) if latencies else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--http", action="store_true", help="HTTP/1.1 keep-alive requests")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60 or not 0 <= args.warmup <= 60:
        parser.error("--duration and --warmup must be within 60 seconds")
    factory = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    result = asyncio.run(
        run(args.port, args.connections, args.warmup, args.duration, args.http),
        loop_factory=factory,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
