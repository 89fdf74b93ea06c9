"""A small shop: three workers take orders from a queue; one order blocks the event loop.

Run it with `coroscope run --output shop.log examples/shop.py`, then read the log with
`coroscope report shop.log` or turn it into a Chrome trace with
`coroscope trace shop.log -o shop.trace.json`.
"""

import asyncio
import random
import time

random.seed(24)  # the same orders, delays and worker for order 7 on every run


async def query_db(order):
    await asyncio.sleep(order["db_ms"] / 1000)
    return order["amount"]


async def charge_card(order, amount):
    await asyncio.sleep(order["card_ms"] / 1000)
    if order["id"] == 7:
        time.sleep(0.8)  # a blocking call in a coroutine: the whole event loop stops


async def worker(queue):
    while True:
        order = await queue.get()
        amount = await query_db(order)
        await charge_card(order, amount)
        queue.task_done()


async def main():
    queue = asyncio.Queue()
    for i in range(12):
        delays = {"db_ms": random.randint(20, 80), "card_ms": random.randint(50, 150)}
        queue.put_nowait({"id": i, **delays, "amount": random.randint(5, 120)})
    workers = [asyncio.create_task(worker(queue), name=f"worker-{i}") for i in range(3)]
    await queue.join()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


asyncio.run(main())
