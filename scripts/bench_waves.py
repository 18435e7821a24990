"""Sends waves of N concurrent POST /run requests (one connection each) to a flowd whose
default flow awaits about 1 s, and prints how long each wave took to complete."""
import asyncio
import json
import sys
import time
from urllib.parse import urlparse


async def one(host, port, story):
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps({"input": "x", "story_id": story}).encode()
    writer.write(b"POST /run HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1]) if data else 0


async def main():
    url, concurrency, waves = urlparse(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for wave in range(waves):
        started = time.monotonic()
        results = await asyncio.gather(*(one(url.hostname, url.port, f"w{wave}-{i}") for i in range(concurrency)),
                                       return_exceptions=True)
        elapsed = time.monotonic() - started
        ok = sum(1 for r in results if r == 200)
        print(f"wave {wave + 1}: {ok}/{concurrency} answered 200 in {elapsed:.2f} s", flush=True)


asyncio.run(main())
