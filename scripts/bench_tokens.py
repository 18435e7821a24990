"""Token-stream load for flowd (scripts/bench tokens): one streaming llm agent, its provider a
stub in this script that streams many small chunks as fast as it can, and 100 followers with
tokens=true. Prints the tokens per second delivered (summed over the followers) and the
server CPU used. Talks HTTP/1.1 over asyncio sockets."""
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlparse

from bench_proc import cpu_seconds, rss_mb

CLIENTS = int(os.environ.get("FOLLOWERS", "100"))
PIECES = int(os.environ.get("PIECES", "20000"))


def dechunk(raw):
    """The body of a chunked HTTP/1.1 response."""
    rest = raw.split(b"\r\n\r\n", 1)[1]
    body = bytearray()
    while rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2:]
    return bytes(body)


go = None
provider_done = None


async def provider(reader, writer):
    """An OpenAI-compatible streamed chat completion: PIECES chunks of a few bytes each."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    await go.wait()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")

    def chunk(obj):
        data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)
    batch = []
    for i in range(PIECES):
        batch.append(chunk({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": f"t{i % 1000:03d} "}}]}))
        if len(batch) == 20:
            writer.write(b"".join(batch))
            batch = []
            await writer.drain()
    batch.append(chunk({"object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": 10, "completion_tokens": PIECES}}))
    batch.append(b"e\r\ndata: [DONE]\n\n\r\n")
    writer.write(b"".join(batch) + b"0\r\n\r\n")
    await writer.drain()
    provider_done.set_result(time.monotonic())
    writer.close()


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


async def main():
    global go, provider_done
    url, pid, provider_port = urlparse(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    go = asyncio.Event()
    provider_done = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(provider, "127.0.0.1", provider_port)
    host, port = url.hostname, url.port

    reader, writer = await request(host, port, "POST", "/runs", {"flow": "tokens", "input": "x", "story_id": "tokens"})
    raw = await reader.read()
    writer.close()
    run_id = json.loads(raw.split(b"\r\n\r\n", 1)[1])["run_id"]

    joined = [asyncio.get_running_loop().create_future() for _ in range(CLIENTS)]

    async def follower(c):
        reader, writer = await request(host, port, "GET", f"/runs/{run_id}/events?tokens=true")
        buffer = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buffer += data
            if not joined[c].done() and b"event: progress" in buffer:
                joined[c].set_result(True)
        writer.close()
        return buffer

    tasks = [asyncio.create_task(follower(c)) for c in range(CLIENTS)]
    await asyncio.gather(*joined)
    before, started = cpu_seconds(pid), time.monotonic()
    go.set()
    bodies = await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    used = cpu_seconds(pid) - before
    sent = await provider_done - started
    server.close()
    # Tokens may come joined (a follower that fell behind): the pieces are counted in the text.
    texts = events = 0
    for body in bodies:
        for block in dechunk(body).split(b"\n\n"):
            if block.startswith(b"event: token\n"):
                events += 1
                texts += len(json.loads(block.split(b"data: ", 1)[1])["text"].split())
    print(f"{CLIENTS} followers with tokens=true, one llm agent streaming {PIECES} pieces "
          f"(provider done in {sent:.2f} s):", flush=True)
    print(f"  {events} token events ({texts} pieces of text) delivered in {elapsed:.2f} s = "
          f"{events / elapsed:,.0f} token events/s, {texts / elapsed:,.0f} pieces/s", flush=True)
    print(f"  server CPU {used:.2f} s ({100 * used / elapsed:.0f}% of one core), "
          f"{1e6 * used / max(texts, 1):.2f} us per piece delivered, RSS {rss_mb(pid):.1f} MB", flush=True)


asyncio.run(main())
