"""Loopback servers run as their own process, so a test counts only its own descriptors and a
benchmark does not share its interpreter with the server.

Run as ``python echo_server.py ROLE tcp|tcp6|unix [--path PATH] [--tls CERT KEY]``: it
prints its address as JSON on one line, then serves until its standard input closes or an hour
has passed. ``echo`` sends back what it reads (over TLS with ``--tls``); ``sink`` accepts and
closes at once, as fast as it can. Servers that misbehave toward kept connections, each
answering one read as ``echo`` does first: ``hangup`` then closes, ``reset`` then resets
(RST), and ``chatty`` then writes one byte nobody asked for (``!``). Start one from Python
with ``serving(...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
from typing import Any, Iterator

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


async def _echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, then: str) -> None:
    try:
        data = await reader.read(65536)
        writer.write(data)
        await writer.drain()
        if then == "chatty":
            writer.write(b"!")
            await writer.drain()
            await reader.read(65536)  # then quiet until the client closes
        elif then == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except ConnectionError:
        pass
    finally:
        writer.close()


def _listen(kind: str, path: str | None) -> socket.socket:
    if kind == "unix":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
    else:
        listener = socket.socket(socket.AF_INET6 if kind == "tcp6" else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("::1" if kind == "tcp6" else "127.0.0.1", 0))
    listener.listen(1024)
    return listener


def _sink(listener: socket.socket) -> None:
    while True:
        connection, _ = listener.accept()
        connection.close()


async def _serve(role: str, listener: socket.socket, tls: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    # A client that rejects our certificate is what some tests are about: not worth a log line.
    loop.set_exception_handler(lambda loop, context: None)
    if role == "sink":
        threading.Thread(target=_sink, args=(listener,), daemon=True).start()
        server = None
    else:
        handler = _echo if role == "echo" else functools.partial(_echo_once, then=role)
        if listener.family == getattr(socket, "AF_UNIX", None):
            server = await asyncio.start_unix_server(handler, sock=listener, ssl=tls)
        else:
            server = await asyncio.start_server(handler, sock=listener, ssl=tls)
    print(json.dumps(listener.getsockname()), flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.buffer.read)
    await asyncio.wait_for(stdin_closed, LIFETIME_SECONDS)
    if server is not None:
        server.close()


@contextlib.contextmanager
def serving(
    role: str, kind: str, path: str | None = None, tls: tuple[str, str] | None = None
) -> Iterator[Any]:
    """Run a server in its own process and yield its address; None where it cannot start."""
    args = [sys.executable, __file__, role, kind]
    args += ["--path", path] if path else []
    args += ["--tls", *tls] if tls else []
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        address = json.loads(line) if line else None
        yield tuple(address) if isinstance(address, list) else address
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.stdout.close()  # type: ignore[union-attr]
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["echo", "sink", "hangup", "reset", "chatty"])
    parser.add_argument("kind", choices=["tcp", "tcp6", "unix"])
    parser.add_argument("--path")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    tls = None
    if args.tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*args.tls)
    try:
        asyncio.run(_serve(args.role, _listen(args.kind, args.path), tls))
    except (OSError, asyncio.TimeoutError, KeyboardInterrupt) as error:
        print(f"echo_server: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
