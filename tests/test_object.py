"""The object around the connection: repr, pickling, copying and subclassing."""

from __future__ import annotations

import copy
import pickle
import socket

import pytest

import lazyconnection


def test_repr_shows_address_family_type_and_open_count(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    assert repr(conn).endswith(f" address={echo_address!r} family=AF_INET type=SOCK_STREAM open=0>")
    with conn, conn:
        assert repr(conn).endswith(" open=2>")


def test_repr_names_the_public_class(LazyConnection, echo_address):
    name = LazyConnection.__name__
    assert name in ("CLazyConnection", "PyLazyConnection")
    assert repr(LazyConnection(echo_address)).startswith(f"<lazyconnection.{name} ")


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_duplicates_keep_configuration_but_no_sockets(LazyConnection, unix_path, duplicate):
    conn = LazyConnection(unix_path, socket.AF_UNIX, max_depth=4)
    with conn:
        twin = duplicate(conn)
        assert type(twin) is LazyConnection
        assert (twin.address, twin.family, twin.type, twin.proto, twin.max_depth) == (
            unix_path,
            socket.AF_UNIX,
            socket.SOCK_STREAM,
            0,
            4,
        )
        assert twin.connections == ()
        with twin as sock:
            assert conn.sock is not sock


def test_subclass_can_override_enter_and_exit(LazyConnection, echo_address, echo):
    events = []

    class Greeting(LazyConnection):
        def __enter__(self):
            sock = super().__enter__()
            sock.sendall(b"hello")
            events.append("enter")
            return sock

        def __exit__(self, *exc_info):
            events.append("exit")
            return super().__exit__(*exc_info)

    conn = Greeting(echo_address)
    with conn as sock:
        assert sock.recv(5) == b"hello"
    assert events == ["enter", "exit"]
    assert sock.fileno() == -1
    assert repr(conn).startswith(f"<{__name__}.")


def test_instances_are_weakly_referenceable(LazyConnection, echo_address):
    import weakref

    conn = LazyConnection(echo_address)
    assert weakref.ref(conn)() is conn


def test_public_names():
    assert lazyconnection.PyLazyConnection.__module__ == "lazyconnection"
    assert lazyconnection.PyLazyConnection.__qualname__ == "PyLazyConnection"
    assert lazyconnection.LazyConnection in (
        lazyconnection.CLazyConnection,
        lazyconnection.PyLazyConnection,
    )
