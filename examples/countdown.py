import asyncio


async def countdown(n):
    while n > 0:
        print(f"Count: {n}")
        await asyncio.sleep(1)
        n -= 1


asyncio.run(countdown(3))
