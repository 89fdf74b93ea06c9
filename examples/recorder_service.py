"""A small service run in recorder mode: nothing is written until something goes wrong.

    COROSCOPE=1 COROSCOPE_MODE=recorder COROSCOPE_OUTPUT=service.log \\
        COROSCOPE_CONTROL=/tmp/service.sock python examples/recorder_service.py
    coroscope report service.log

A TCP server answers requests from a client in the same process for a few seconds.  Request
40 makes its handler call ``time.sleep(0.7)``, which blocks the event loop: the watchdog's
``loop.blocked`` triggers an incident, and the log gets the ``incident`` record followed by
the switches of the seconds before it (which handler ran, with which locals), and nothing
else.  While it runs, ``coroscope ctl /tmp/service.sock status`` (or ``mode all --for 5``,
``dump``, ``snapshot``) talks to it.
"""

import asyncio
import time

REQUESTS = 60


async def lookup(key):
    await asyncio.sleep(0.005)  # a database, say
    if key == 40:
        time.sleep(0.7)  # a blocking call in a handler: the whole loop stops
    return {"key": key, "value": key * key}


async def handle(reader, writer):
    while line := await reader.readline():
        key = int(line)
        item = await lookup(key)
        writer.write(f"{item['value']}\n".encode())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for key in range(REQUESTS):
        writer.write(f"{key}\n".encode())
        await writer.drain()
        await reader.readline()
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await client(port)
    print(f"served {REQUESTS} requests")


asyncio.run(main())
