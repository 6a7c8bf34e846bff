"""`with` and `async with` share one opening path: the same cases give the same outcomes."""

from __future__ import annotations

import asyncio
import socket

import pytest


@pytest.fixture(params=["with", "async with"])
def inside(request):
    """inside(conn, body): run body(sock) in a block of the mode under test; return its result."""

    def blocking(conn, body=lambda sock: sock):
        with conn as sock:
            return body(sock)

    def asynchronous(conn, body=lambda sock: sock):
        async def run():
            async with conn as sock:
                return body(sock)

        return asyncio.run(run())

    return blocking if request.param == "with" else asynchronous


def test_retries_then_the_last_error(LazyConnection, inside, refused_address, recording_factory):
    factory = recording_factory()
    conn = LazyConnection(refused_address, retries=2, backoff=0.001, socket_factory=factory)
    with pytest.raises(ConnectionRefusedError):
        inside(conn)
    assert [sock.fileno() for sock in factory.made] == [-1, -1, -1]
    assert conn.connections == ()


def test_a_raising_hook_closes_the_socket(LazyConnection, inside, echo_address, recording_factory):
    def refuse(sock):
        raise LookupError("no")

    factory = recording_factory()
    conn = LazyConnection(echo_address, on_connect=refuse, socket_factory=factory)
    with pytest.raises(LookupError):
        inside(conn)
    assert [sock.fileno() for sock in factory.made] == [-1]


def test_unspec_tries_each_resolved_address(
    LazyConnection, inside, echo_address, refused_address, monkeypatch
):
    resolved = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", refused_address),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", echo_address),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved)
    conn = LazyConnection(("db.test", 5432), socket.AF_UNSPEC)
    assert inside(conn, lambda sock: sock.getpeername()) == echo_address


def test_unspec_with_every_address_failing(LazyConnection, inside, refused_address, monkeypatch):
    resolved = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", refused_address)] * 2
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved)
    with pytest.raises(ConnectionRefusedError):
        inside(LazyConnection(("db.test", 5432), socket.AF_UNSPEC))


def test_socket_options_and_source_address_apply(LazyConnection, inside, echo_address):
    conn = LazyConnection(
        echo_address,
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        source_address=("127.0.0.1", 0),
    )
    keepalive, host = inside(
        conn,
        lambda sock: (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockname()[0],
        ),
    )
    assert keepalive and host == "127.0.0.1"


def test_timeout_bounds_the_connect(LazyConnection, inside, full_backlog_address, no_leaks):
    with no_leaks():
        with pytest.raises(socket.timeout):
            inside(LazyConnection(full_backlog_address, timeout=0.05))


def test_max_depth_counts_blocks_of_either_mode(LazyConnection, inside, echo_address):
    conn = LazyConnection(echo_address, max_depth=1)
    with pytest.raises(RuntimeError, match="Already connected"):
        inside(conn, lambda sock: conn.__enter__())
    assert conn.connections == ()
