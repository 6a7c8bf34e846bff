"""Typed use of the public API, checked by `mypy --strict` (the lint session); run by a test."""

from __future__ import annotations

import socket
from typing import Optional, Tuple, Type

import lazyconnection
from lazyconnection import CLazyConnection, LazyConnection, PyLazyConnection


def status_line(conn: LazyConnection) -> bytes:
    with conn as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with sock.makefile("rb") as reply:
            line: bytes = reply.readline()
    return line


def describe(
    conn: LazyConnection,
) -> Tuple[int, Optional[socket.socket], Tuple[socket.socket, ...]]:
    return len(conn.connections), conn.sock, conn.connections


def implementations() -> list[Type[LazyConnection]]:
    found: list[Type[LazyConnection]] = [PyLazyConnection]
    if CLazyConnection is not None:
        found.append(CLazyConnection)
    return found


def configured(address: Tuple[str, int]) -> LazyConnection:
    conn = lazyconnection.LazyConnection(
        address, socket.AF_INET, socket.SOCK_STREAM, 0, max_depth=2, socket_factory=socket.socket
    )
    family: int = conn.family
    depth: Optional[int] = conn.max_depth
    assert family == socket.AF_INET and depth == 2
    return conn
