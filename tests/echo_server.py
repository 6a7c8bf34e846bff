"""A loopback echo server run as its own process, so tests count only their own descriptors.

Usage: python echo_server.py tcp|tcp6|unix [PATH]. Prints its address as JSON on one line,
then serves until its standard input closes or an hour has passed.
"""

from __future__ import annotations

import asyncio
import json
import sys

LIFETIME_SECONDS = 3600


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


async def main(kind: str, path: str | None) -> None:
    if kind == "unix":
        server = await asyncio.start_unix_server(_echo, path, backlog=1024)
        address: object = path
    else:
        host = "::1" if kind == "tcp6" else "127.0.0.1"
        server = await asyncio.start_server(_echo, host, 0, backlog=1024)
        address = server.sockets[0].getsockname()
    print(json.dumps(address), flush=True)
    async with server:
        await asyncio.wait_for(_stdin_closed(), LIFETIME_SECONDS)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
    except (asyncio.TimeoutError, KeyboardInterrupt):
        pass
