#!/usr/bin/env python3
"""Records a symbol's ticks to CSV, across reconnects, every seq once.
    PYTHONPATH=clients/python python3 examples/record_csv.py ws://127.0.0.1:8080/ws AAPL ticks.csv [TOKEN]"""
import asyncio
import csv
import sys

import tickgate


async def main(url, symbol, path, token=None):
    async with tickgate.connect(url, token=token) as c:
        await c.subscribe([symbol])
        with open(path, "a", newline="") as f:
            out = csv.writer(f)
            async for u in c.updates():
                out.writerow([u["symbol"], u["seq"], u["price"], u["timestamp"]])
                f.flush()

if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
