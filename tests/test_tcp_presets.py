"""tcp_nodelay and tcp_keepalive: set before connect on every attempt, read back with getsockopt.

Their bad values are in test_arguments.py, with every other option's.
"""

from __future__ import annotations

import socket

import pytest

from lazyconnection import _settings

KNOBS = _settings.KEEPALIVE_KNOBS  # (idle, interval, count) option names, or None
needs_knobs = pytest.mark.skipif(KNOBS is None, reason="no keepalive timing knobs here")


def _keepalive_timings(sock):
    return tuple(sock.getsockopt(socket.IPPROTO_TCP, knob) for knob in KNOBS)


def test_tcp_nodelay_turns_nagle_off(LazyConnection, echo_address, entered):
    conn = LazyConnection(echo_address, tcp_nodelay=True)
    assert entered(conn, lambda sock: sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_tcp_keepalive_true_turns_keepalive_on_with_the_systems_timings(
    LazyConnection, echo_address, entered
):
    conn = LazyConnection(echo_address, tcp_keepalive=True)
    assert entered(conn, lambda sock: sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
    if KNOBS is not None:
        with socket.socket() as untouched:
            expected = _keepalive_timings(untouched)
        assert entered(conn, _keepalive_timings) == expected


@needs_knobs
def test_tcp_keepalive_tuple_sets_idle_interval_and_count(LazyConnection, echo_address, entered):
    conn = LazyConnection(echo_address, tcp_keepalive=(7, 3, 4))
    on, timings = entered(
        conn,
        lambda sock: (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            _keepalive_timings(sock),
        ),
    )
    assert on
    assert timings == (7, 3, 4)


def test_without_presets_the_socket_keeps_the_systems_settings(
    LazyConnection, echo_address, entered
):
    conn = LazyConnection(echo_address, timeout=5.0)  # an option, so not the inline connect
    nodelay, keepalive = entered(
        conn,
        lambda sock: (
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        ),
    )
    assert (nodelay, keepalive) == (0, 0)


@pytest.mark.parametrize("delay", [None, 0.05], ids=["in turn", "raced"])
def test_presets_are_set_before_connect_on_every_attempt(
    LazyConnection, resolve_to, refused_address, echo_address, entered, delay
):
    seen_at_connect = []

    class Recording(socket.socket):
        def connect(self, address):
            seen_at_connect.append(
                (
                    self.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
                    self.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
                )
            )
            super().connect(address)

    name = resolve_to(refused_address, echo_address)
    conn = LazyConnection(
        name,
        socket.AF_UNSPEC,
        tcp_nodelay=True,
        tcp_keepalive=True,
        happy_eyeballs_delay=delay,
        socket_factory=Recording,
    )
    assert entered(conn, lambda sock: sock.getpeername()) == echo_address
    assert seen_at_connect[-2:] == [(True, True), (True, True)]


def test_socket_options_have_the_last_word_over_presets(LazyConnection, echo_address, entered):
    nagle_on = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    conn = LazyConnection(echo_address, tcp_nodelay=True, socket_options=[nagle_on])
    assert entered(conn, lambda sock: sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) == 0


def test_options_show_the_new_settings_and_their_defaults(LazyConnection):
    conn = LazyConnection(("127.0.0.1", 80))
    assert conn.options["happy_eyeballs_delay"] is None
    assert conn.options["tcp_nodelay"] is False
    assert conn.options["tcp_keepalive"] is None
    if KNOBS is not None:
        conn = LazyConnection(("127.0.0.1", 80), tcp_nodelay=True, tcp_keepalive=[60, 10, 5])
        assert conn.options["tcp_nodelay"] is True
        assert conn.options["tcp_keepalive"] == (60, 10, 5)


def test_a_copy_keeps_the_new_settings(LazyConnection):
    import copy

    conn = LazyConnection(
        ("localhost", 80), socket.AF_UNSPEC, happy_eyeballs_delay=0.25, tcp_nodelay=True
    )
    assert copy.copy(conn).options == conn.options
