#!/usr/bin/env python3
"""Holds N idle keep-alive connections to a proxy, for measuring what an idle connection costs it.

Usage: idle_conns.py URL N BODY_FILE

Opens N connections to URL (http:// or https://; https verifies nothing and offers HTTP/1.1 only,
like wrk), sends one POST of BODY_FILE's bytes on each and reads its answer (so every connection
has carried a request, as a browser's idle keep-alive connection has), then prints
`ready N` on stdout and holds them all open until stdin closes. Exits non-zero, saying why on
stderr, if a connection fails or an answer is not a 200. Connections are opened at most 100 at a
time; every wait is bounded (10 s per connection step).
"""

import asyncio
import ssl
import sys
from urllib.parse import urlsplit

STEP_TIMEOUT = 10.0
AT_ONCE = 100


async def read_answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


async def open_one(host, port, context, request, gate):
    async with gate:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), STEP_TIMEOUT
        )
        writer.write(request)
        await asyncio.wait_for(writer.drain(), STEP_TIMEOUT)
        status = await asyncio.wait_for(read_answer(reader), STEP_TIMEOUT)
        if status != 200:
            raise RuntimeError(f"answer {status}")
        return writer


async def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, count, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    parts = urlsplit(url)
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
    with open(body_file, "rb") as f:
        body = f.read()
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    gate = asyncio.Semaphore(AT_ONCE)
    tasks = [
        open_one(parts.hostname, parts.port, context, request, gate)
        for _ in range(count)
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    writers = [r for r in results if not isinstance(r, BaseException)]
    try:
        if failed:
            print(
                f"idle_conns.py: {len(failed)} of {count} connections failed, first: {failed[0]!r}",
                file=sys.stderr,
            )
            return 1
        print(f"ready {len(writers)}", flush=True)
        # Hold until stdin closes.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        return 0
    finally:
        for w in writers:
            w.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
