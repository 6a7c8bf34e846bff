"""The `with` behaviour itself, against both implementations and real loopback servers."""

from __future__ import annotations

import socket

import pytest


def test_enter_returns_a_connected_socket(LazyConnection, echo_address, echo):
    with LazyConnection(echo_address) as sock:
        assert type(sock) is socket.socket
        assert sock.getpeername() == echo_address
        assert echo(sock, b"ping") == b"ping"


def test_exit_closes_the_socket(LazyConnection, echo_address):
    with LazyConnection(echo_address) as sock:
        pass
    assert sock.fileno() == -1


def test_construction_does_no_io(LazyConnection, refused_address):
    conn = LazyConnection(refused_address)
    assert conn.connections == ()


def test_family_and_type_are_honoured_for_unix_paths(LazyConnection, unix_path, echo):
    with LazyConnection(unix_path, socket.AF_UNIX) as sock:
        assert sock.family == socket.AF_UNIX
        assert sock.type == socket.SOCK_STREAM
        assert echo(sock, b"unix") == b"unix"


def test_ipv6_address_connects(LazyConnection, echo6_address, echo):
    with LazyConnection(echo6_address, socket.AF_INET6) as sock:
        assert sock.family == socket.AF_INET6
        assert echo(sock, b"six") == b"six"


def test_type_and_proto_reach_the_socket(LazyConnection, echo_address):
    with LazyConnection(echo_address, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert sock.type == socket.SOCK_DGRAM
    with LazyConnection(echo_address, proto=socket.IPPROTO_TCP) as sock:
        assert sock.proto == socket.IPPROTO_TCP


def test_nested_blocks_get_independent_sockets(LazyConnection, echo_address, echo):
    conn = LazyConnection(echo_address)
    with conn as outer:
        with conn as inner:
            assert inner is not outer
            assert inner.getsockname() != outer.getsockname()
            assert echo(inner, b"inner") == b"inner"
        assert inner.fileno() == -1
        assert outer.fileno() != -1
        assert echo(outer, b"outer") == b"outer"
    assert outer.fileno() == -1


def test_body_exception_propagates_unchanged_after_close(LazyConnection, echo_address):
    raised = ValueError("from the body")
    with pytest.raises(ValueError) as caught:
        with LazyConnection(echo_address) as sock:
            raise raised
    assert caught.value is raised
    assert sock.fileno() == -1


def test_exit_returns_none_so_nothing_is_suppressed(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    conn.__enter__()
    assert conn.__exit__(KeyError, KeyError("k"), None) is None


def test_failed_connect_closes_the_new_socket(
    LazyConnection, refused_address, recording_factory, no_leaks
):
    factory = recording_factory()
    conn = LazyConnection(refused_address, socket_factory=factory)
    with no_leaks():
        with pytest.raises(ConnectionRefusedError):
            conn.__enter__()
    assert factory.closed() == [True]
    assert conn.connections == ()


def test_failed_connect_leaves_the_object_usable(
    LazyConnection, echo_address, refused_address, redirected
):
    conn = LazyConnection(echo_address, socket_factory=redirected(refused_address, echo_address))
    with pytest.raises(ConnectionRefusedError):
        conn.__enter__()
    with conn as sock:
        assert sock.getpeername() == echo_address


def test_failing_factory_pushes_nothing(LazyConnection, echo_address):
    def factory(*args):
        raise OSError("no sockets today")

    conn = LazyConnection(echo_address, socket_factory=factory)
    with pytest.raises(OSError, match="no sockets today"):
        conn.__enter__()
    assert conn.connections == ()


def test_keyboard_interrupt_in_connect_closes_the_socket(LazyConnection, echo_address, no_leaks):
    class Interrupted(socket.socket):
        def connect(self, address):
            raise KeyboardInterrupt

    conn = LazyConnection(echo_address, socket_factory=Interrupted)
    with no_leaks():
        with pytest.raises(KeyboardInterrupt):
            conn.__enter__()
    assert conn.connections == ()


def test_exit_without_enter_raises_runtime_error(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    with pytest.raises(RuntimeError, match="no open connection"):
        conn.__exit__(None, None, None)
    with conn as sock:
        assert sock.getpeername() == echo_address


def test_max_depth_one_refuses_a_nested_enter(LazyConnection, echo_address, echo):
    conn = LazyConnection(echo_address, max_depth=1)
    with conn as sock:
        with pytest.raises(RuntimeError, match=r"^Already connected$"):
            conn.__enter__()
        assert conn.connections == (sock,)
        assert echo(sock, b"still open") == b"still open"
    assert sock.fileno() == -1


def test_max_depth_counts_open_sockets(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, max_depth=3)
    with conn, conn, conn:
        with pytest.raises(RuntimeError, match="Already connected"):
            conn.__enter__()
    with conn, conn, conn:
        assert len(conn.connections) == 3


def test_unlimited_depth_by_default(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, socket_factory=_StandIn)
    for _ in range(1500):
        conn.__enter__()
    assert len(conn.connections) == 1500
    for _ in range(1500):
        conn.__exit__(None, None, None)
    assert conn.connections == ()


def test_connections_lists_open_sockets_innermost_last(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    assert conn.connections == ()
    with conn as outer:
        assert conn.connections == (outer,)
        with conn as inner:
            assert conn.connections == (outer, inner)
        assert conn.connections == (outer,)
    assert conn.connections == ()


def test_sock_is_the_innermost_socket_or_none(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    assert conn.sock is None
    with conn as outer:
        assert conn.sock is outer
        with conn as inner:
            assert conn.sock is inner
        assert conn.sock is outer
    assert conn.sock is None


def test_configuration_is_readable(LazyConnection, unix_path):
    conn = LazyConnection(unix_path, socket.AF_UNIX, socket.SOCK_STREAM, 0, max_depth=2)
    assert conn.address == unix_path
    assert conn.family == socket.AF_UNIX
    assert conn.type == socket.SOCK_STREAM
    assert conn.proto == 0
    assert conn.max_depth == 2
    assert conn.socket_factory is socket.socket


def test_configuration_is_read_only(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    with pytest.raises(AttributeError):
        conn.address = ("127.0.0.1", 1)


def test_socket_factory_makes_the_socket(LazyConnection, echo_address):
    calls = []

    class Recorded(socket.socket):
        pass

    def factory(family, type, proto):
        calls.append((family, type, proto))
        return Recorded(family, type, proto)

    with LazyConnection(echo_address, socket_factory=factory) as sock:
        assert type(sock) is Recorded
    assert calls == [(socket.AF_INET, socket.SOCK_STREAM, 0)]


class _StandIn:
    """A socket stand-in with calls that do nothing."""

    def __init__(self, *args):
        self.closed = False

    def connect(self, address):
        pass

    def close(self):
        self.closed = True
