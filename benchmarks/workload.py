"""One benchmark measurement: one workload, in this process, under whatever monitoring the
environment (or ``--peer``) switched on.  Run by ``bench.py``, once per measurement, in a
fresh interpreter; prints one ``BENCH {json}`` line on standard output.

Workloads (each runs a short untimed warm-up first, then a timed phase of ``--duration``
seconds; the timed phase ends only when the monitoring's pending output is written, see
:class:`Probe`):

``switch``
    ``--tasks`` tasks each looping ``await asyncio.sleep(0)`` through an await chain of
    ``--depth`` coroutine frames.  Metric: CPU time of the process (every thread, so the
    writer thread's work counts) per task switch (one ``sleep(0)``), in microseconds;
    ``metric2`` is the wall-clock time per switch.
``queue``
    Producers and consumers passing integers through a small ``asyncio.Queue``.  Metric:
    CPU microseconds per item delivered; ``metric2``: wall-clock microseconds per item.
``net``
    A line-protocol service on ``asyncio.start_server`` (127.0.0.1, ephemeral port), each
    request handled through a three-coroutine chain with one ``await`` standing for a cache
    lookup; the load comes from ``netclient.py`` in another process (without monitoring).
    Metric: requests per second, with latency percentiles, as measured by the client;
    ``metric2``: the server process's CPU microseconds per request served.
``aiohttp``
    An aiohttp application with one small JSON handler (one ``await`` standing for a cache
    lookup) under HTTP/1.1 keep-alive load from ``netclient.py --http`` in another process.
    Metrics as for ``net``.

CPU time is the primary metric of the CPU-bound workloads because it is much less
disturbed than wall-clock time by other processes on the machine; on an idle machine the
two agree (the loop never sleeps), except that CPU time also counts the writer's system
calls that overlap the loop's work, which makes it slightly conservative.

``--loop uvloop`` runs the same workload on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


# -- monitoring probes -------------------------------------------------------------------------


class Probe:
    """Whatever monitors this process; ``finish`` runs inside the timed region.

    ``finish`` waits until every record captured so far has been rendered and written, so
    the writer thread's work (it holds the GIL while rendering) is part of the measured
    time and is not left for after the clock stops.
    """

    name = "none"

    def finish(self) -> None:
        """Complete the pending output of the monitoring (inside the timed region)."""

    def close(self) -> dict[str, Any]:
        """Stop monitoring (after the timed region); return facts worth reporting."""
        return {}


class CoroscopeProbe(Probe):
    """coroscope started by its ``.pth`` file from ``COROSCOPE=1`` (nothing to start here)."""

    name = "coroscope"

    def __init__(self, module: Any) -> None:
        self.module = module

    def finish(self) -> None:
        self.module.flush(timeout=60.0)

    def close(self) -> dict[str, Any]:
        config = self.module.current_config()
        return {"coroscope_config": repr(config)}


class SetprofileProbe(Probe):
    """The ``sys.setprofile`` switch logger of ``peers/setprofile_logger.py``."""

    name = "setprofile"

    def __init__(self, path: str) -> None:
        from peers.setprofile_logger import SwitchLogger

        self.logger = SwitchLogger(path)
        self.logger.start()

    def finish(self) -> None:
        self.logger.flush(timeout=60.0)

    def close(self) -> dict[str, Any]:
        self.logger.close()
        return {"written": self.logger.written}


class VizTracerProbe(Probe):
    """VizTracer with ``log_async=True`` (every call and return, attributed to its task).

    VizTracer keeps its events in an in-memory ring buffer (1,000,000 entries, its default)
    and writes them only when asked to save; saving is not measured (that favours it).
    """

    name = "viztracer"

    def __init__(self) -> None:
        from viztracer import VizTracer

        self.tracer = VizTracer(log_async=True, verbose=0, register_global=False)
        self.tracer.start()

    def finish(self) -> None:
        self.tracer.stop()

    def close(self) -> dict[str, Any]:
        return {}


def make_probe(peer: str, output: str | None) -> Probe:
    """The probe for ``--peer``, or coroscope's if its ``.pth`` file started it."""
    if peer == "setprofile":
        assert output is not None
        return SetprofileProbe(output)
    if peer == "viztracer":
        return VizTracerProbe()
    module = sys.modules.get("coroscope")  # imported only if COROSCOPE=1 started it
    if module is not None and module.is_installed():
        return CoroscopeProbe(module)
    return Probe()


# -- workload 1: task switches -----------------------------------------------------------------


class Flag:
    """Shared stop flag; the workers poll ``running`` between switches."""

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = True


async def _link1(n: int) -> int:
    token = n * 2
    await asyncio.sleep(0)
    return token


async def _link2(n: int) -> int:
    label = "link2"
    return await _link1(n) + len(label)


async def _link3(n: int) -> int:
    label = "link3"
    return await _link2(n) + len(label)


async def _link4(n: int) -> int:
    label = "link4"
    return await _link3(n) + len(label)


# _CHAINS[d] awaits a chain of d coroutine frames below the task's root coroutine.
_CHAINS: dict[int, Callable[[int], Coroutine[Any, Any, int]]] = {
    1: _link1,
    2: _link2,
    3: _link3,
    4: _link4,
}


async def switch_worker(index: int, depth: int, flag: Flag) -> int:
    """A task's root coroutine: switch until told to stop; return the number of switches."""
    name = f"worker-{index}"
    done = 0
    total = 0
    if depth <= 1:
        while flag.running:
            await asyncio.sleep(0)
            done += 1
    else:
        below = _CHAINS[depth - 1]
        while flag.running:
            total += await below(done)
            done += 1
    del name, total
    return done


async def switch_phase(tasks: int, depth: int, seconds: float) -> int:
    """Run ``tasks`` switching tasks for ``seconds``; return the number of switches."""
    flag = Flag()
    workers = [asyncio.create_task(switch_worker(i, depth, flag)) for i in range(tasks)]
    await asyncio.sleep(seconds)
    flag.running = False
    return sum(await asyncio.gather(*workers))


# -- workload 2: producer/consumer through asyncio.Queue --------------------------------------


async def producer(queue: asyncio.Queue[int | None], flag: Flag) -> int:
    """Put integers until told to stop."""
    sent = 0
    while flag.running:
        await queue.put(sent)
        sent += 1
    return sent


async def consumer(queue: asyncio.Queue[int | None]) -> int:
    """Take items until the ``None`` sentinel; return how many were taken."""
    received = 0
    checksum = 0
    while True:
        item = await queue.get()
        if item is None:
            return received
        checksum ^= item
        received += 1


async def queue_phase(pairs: int, maxsize: int, seconds: float) -> int:
    """``pairs`` producers and consumers for ``seconds``; return the items delivered."""
    flag = Flag()
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize)
    producers = [asyncio.create_task(producer(queue, flag)) for _ in range(pairs)]
    consumers = [asyncio.create_task(consumer(queue)) for _ in range(pairs)]
    await asyncio.sleep(seconds)
    flag.running = False
    await asyncio.gather(*producers)
    for _ in consumers:
        await queue.put(None)
    return sum(await asyncio.gather(*consumers))


# -- workload 3: a network service -------------------------------------------------------------

CATALOG = {str(i).encode(): b"item-%d " % i + b"x" * 80 for i in range(1000)}


async def lookup(key: bytes) -> bytes:
    """Stands for a cache or database round trip: one real suspension."""
    await asyncio.sleep(0)
    return CATALOG.get(key, b"missing")


async def respond(line: bytes, served: int) -> bytes:
    """Parse one request (``GET <key>``) and build its response line."""
    key = line[4:].strip()
    item = await lookup(key)
    return b"OK " + item + b"\n"


SERVED = [0]  # requests answered by this process


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One connection: read request lines and answer each in order."""
    served = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(await respond(line, served))
            await writer.drain()
            served += 1
    except ConnectionError:
        pass
    finally:
        SERVED[0] += served
        writer.close()


async def net_run(args: argparse.Namespace) -> dict[str, Any]:
    """Serve on loopback while ``netclient.py`` loads the server from another process."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await _load(args, port)
    finally:
        server.close()
    cpu = result.pop("cpu_s")
    await asyncio.sleep(0.01)  # let the handlers of closed connections count what they served
    result["served"] = SERVED[0]
    result["cpu_us_per_request"] = cpu / SERVED[0] * 1e6 if SERVED[0] else float("nan")
    return result


# -- workload 4: an aiohttp service --------------------------------------------------------------


async def aiohttp_run(args: argparse.Namespace) -> dict[str, Any]:
    """A small aiohttp application (one JSON handler with one real suspension) under HTTP
    keep-alive load from ``netclient.py --http`` in another process."""
    from aiohttp import web

    served = [0]

    async def item(request: web.Request) -> web.Response:
        key = request.match_info["key"].encode()
        value = await lookup(key)
        served[0] += 1
        return web.json_response({"key": key.decode(), "value": value.decode()})

    app = web.Application()
    app.router.add_get("/item/{key}", item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        result = await _load(args, port, http=True)
    finally:
        await runner.cleanup()
    result["served"] = served[0]
    cpu = result.pop("cpu_s")
    result["cpu_us_per_request"] = cpu / served[0] * 1e6 if served[0] else float("nan")
    return result


async def _load(args: argparse.Namespace, port: int, http: bool = False) -> dict[str, Any]:
    """Run the load client against ``port``; its result, with this process's CPU time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COROSCOPE")}
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = await asyncio.create_subprocess_exec(
        args.client_python,
        str(HERE / "netclient.py"),
        "--port",
        str(port),
        "--connections",
        str(args.connections),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
        *(("--http",) if http else ()),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    cpu0 = time.process_time()
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), args.warmup + args.duration + 60)
    finally:
        if proc.returncode is None:
            proc.kill()
    cpu = time.process_time() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    result["cpu_s"] = cpu
    return result


# -- main ----------------------------------------------------------------------------------------


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``None`` for asyncio's default loop, uvloop's constructor for ``uvloop``."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def measure(args: argparse.Namespace, probe: Probe) -> dict[str, Any]:
    """Warm up, then run the timed phase; the probe's output is finished inside it."""
    if args.workload in ("net", "aiohttp"):
        result = await (net_run(args) if args.workload == "net" else aiohttp_run(args))
        probe.finish()
        return {"metric": result["rps"], "metric2": result["cpu_us_per_request"], **result}
    if args.workload == "switch":
        await switch_phase(args.tasks, args.depth, args.warmup)
        t0, c0 = time.perf_counter(), time.process_time()
        ops = await switch_phase(args.tasks, args.depth, args.duration)
    else:
        await queue_phase(args.pairs, args.maxsize, args.warmup)
        t0, c0 = time.perf_counter(), time.process_time()
        ops = await queue_phase(args.pairs, args.maxsize, args.duration)
    probe.finish()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "metric": cpu / ops * 1e6,  # CPU time of the whole process (all threads) per op
        "metric2": elapsed / ops * 1e6,  # wall-clock time per op
        "ops": ops,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("switch", "queue", "net", "aiohttp"), required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--peer", choices=("none", "setprofile", "viztracer"), default="none")
    parser.add_argument("--peer-output", help="file the setprofile peer writes to")
    parser.add_argument("--duration", type=float, default=0.3, help="timed phase, seconds")
    parser.add_argument("--warmup", type=float, default=0.1, help="untimed phase, seconds")
    parser.add_argument("--tasks", type=int, default=1000, help="switch: number of tasks")
    parser.add_argument("--depth", type=int, default=1, choices=(1, 2, 3, 4, 5))
    parser.add_argument("--pairs", type=int, default=4, help="queue: producers (= consumers)")
    parser.add_argument("--maxsize", type=int, default=8, help="queue: its capacity")
    parser.add_argument("--connections", type=int, default=16, help="net: client connections")
    parser.add_argument("--client-python", default=sys.executable, help="net: client's Python")
    args = parser.parse_args(argv)

    probe = make_probe(args.peer, args.peer_output)
    result = asyncio.run(measure(args, probe), loop_factory=loop_factory(args.loop))
    result["probe"] = probe.name
    result.update(probe.close())
    result["python"] = sys.version.split()[0]
    sys.stdout.write("BENCH " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
