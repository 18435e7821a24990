"""Event-stream load for flowd (scripts/bench stream): idle streams' CPU cost, and events
per second delivered to many streaming clients. Talks HTTP/1.1 over asyncio sockets."""
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlparse

from bench_proc import cpu_seconds, rss_mb


async def request(host, port, method, path, body=None, accept_stream=False):
    reader, writer = await asyncio.open_connection(host, port)
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    if accept_stream:
        head += "Accept: text/event-stream\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    return reader, writer


async def idle_streams(host, port, pid, count, seconds):
    run_ids = []
    for start in range(0, count, 200):
        async def start_run(i):
            reader, writer = await request(host, port, "POST", "/runs", {"flow": "idle", "input": "x", "story_id": f"idle-{i}"})
            raw = await reader.read()
            writer.close()
            return json.loads(raw.split(b"\r\n\r\n", 1)[1])["run_id"]
        run_ids += await asyncio.gather(*(start_run(i) for i in range(start, min(count, start + 200))))
    streams = []
    for run_id in run_ids:
        reader, writer = await request(host, port, "GET", f"/runs/{run_id}/events")
        streams.append((reader, writer))
    for reader, _ in streams:
        await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(1)
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
    print(f"{count} open event streams on idle runs: server CPU {used:.2f} s in {elapsed:.1f} s "
          f"({100 * used / elapsed:.2f}% of one core), RSS {rss_mb(pid):.1f} MB", flush=True)
    for _, writer in streams:
        writer.close()


async def busy_streams(host, port, clients, runs_each):
    total = 0

    async def client(c):
        nonlocal total
        for r in range(runs_each):
            reader, writer = await request(host, port, "POST", "/run", {"flow": "chatty", "input": "x", "story_id": f"c{c}-{r}"},
                                           accept_stream=True)
            data = await reader.read()
            writer.close()
            total += data.count(b"\nevent: ")
    started = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.monotonic() - started
    print(f"{clients} streaming clients: {total} events in {elapsed:.2f} s = {total / elapsed:,.0f} events/s", flush=True)


async def main():
    url, pid = urlparse(sys.argv[1]), int(sys.argv[2])
    await idle_streams(url.hostname, url.port, pid, int(os.environ.get("STREAMS", "1000")), 10)
    await busy_streams(url.hostname, url.port, 100, int(os.environ.get("RUNS_EACH", "5")))


asyncio.run(main())
