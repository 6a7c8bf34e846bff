"""Connection options: timeout, source address, socket options, AF_UNSPEC, TLS, hooks, retries."""

from __future__ import annotations

import socket
import ssl
import sys

import pytest

# timeout


def test_timeout_bounds_a_connect_that_cannot_complete(LazyConnection, full_backlog_address):
    conn = LazyConnection(full_backlog_address, timeout=0.1)
    with pytest.raises(socket.timeout):
        conn.__enter__()
    assert conn.connections == ()


def test_timeout_stays_on_the_socket(LazyConnection, echo_address):
    with LazyConnection(echo_address, timeout=2.5) as sock:
        assert sock.gettimeout() == 2.5


def test_timeout_none_means_blocking(LazyConnection, echo_address):
    with LazyConnection(echo_address, timeout=None) as sock:
        assert sock.gettimeout() is None


def test_default_timeout_is_the_stdlib_global_default(LazyConnection, echo_address):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(7.0)
    try:
        with LazyConnection(echo_address) as sock:
            assert sock.gettimeout() == 7.0
    finally:
        socket.setdefaulttimeout(previous)


# source_address and socket_options


def test_source_address_is_what_the_server_sees(LazyConnection):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        conn = LazyConnection(listener.getsockname(), source_address=("127.0.0.2", 0))
        with conn as sock:
            peer, (host, port) = listener.accept()
            with peer:
                assert host == "127.0.0.2"
                assert (host, port) == sock.getsockname()


def test_socket_options_are_set_before_connect(LazyConnection, echo_address):
    options = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    ]
    with LazyConnection(echo_address, socket_options=options) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0


# AF_UNSPEC


def test_unspec_resolves_localhost_and_connects(LazyConnection, echo_address, echo, no_leaks):
    conn = LazyConnection(("localhost", echo_address[1]), socket.AF_UNSPEC)
    with no_leaks():  # a refused ::1 first must leave nothing open
        with conn as sock:
            assert sock.getpeername()[:2] == echo_address
            assert echo(sock, b"unspec") == b"unspec"


def test_unspec_tries_each_address_and_closes_every_failure(
    LazyConnection, echo_address, refused_address, recording_factory, monkeypatch
):
    factory = recording_factory()
    results = _resolved(refused_address, echo_address)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: results)
    conn = LazyConnection(("example.invalid", 1), socket.AF_UNSPEC, socket_factory=factory)
    with conn as sock:
        assert sock.getpeername() == echo_address
    assert factory.closed() == [True, True]


def test_unspec_raises_the_first_error_by_default(LazyConnection, refused_address, monkeypatch):
    results = _resolved(refused_address, refused_address)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: results)
    conn = LazyConnection(("example.invalid", 1), socket.AF_UNSPEC)
    with pytest.raises(ConnectionRefusedError):
        conn.__enter__()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in Python 3.11")
def test_unspec_all_errors_raises_a_group_of_every_attempt(
    LazyConnection, refused_address, monkeypatch
):
    results = _resolved(refused_address, refused_address)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: results)
    conn = LazyConnection(("example.invalid", 1), socket.AF_UNSPEC, all_errors=True)
    with pytest.raises(ExceptionGroup) as caught:  # noqa: F821
        conn.__enter__()
    assert [type(error) for error in caught.value.exceptions] == [ConnectionRefusedError] * 2


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="before 3.11: the last error")
def test_unspec_all_errors_raises_the_last_error_before_311(
    LazyConnection, refused_address, monkeypatch
):
    results = _resolved(refused_address, refused_address)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: results)
    conn = LazyConnection(("example.invalid", 1), socket.AF_UNSPEC, all_errors=True)
    with pytest.raises(ConnectionRefusedError):
        conn.__enter__()


def _resolved(*addresses):
    """What getaddrinfo would return for a name with these IPv4 addresses."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address) for address in addresses]


# TLS


def test_tls_connection_is_verified_and_works(LazyConnection, tls_address, trusting_context, echo):
    conn = LazyConnection(tls_address, ssl_context=trusting_context)
    with conn as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.getpeercert()["subjectAltName"]
        assert echo(sock, b"secret") == b"secret"
    assert sock.fileno() == -1


def test_server_hostname_defaults_to_the_host_given(LazyConnection):
    context = ssl.create_default_context()
    conn = LazyConnection(("localhost", 443), ssl_context=context)
    assert conn.options["server_hostname"] == "localhost"
    conn = LazyConnection((b"localhost", 443), ssl_context=context)
    assert conn.options["server_hostname"] == "localhost"


def test_untrusted_ca_is_rejected(LazyConnection, tls_address, untrusted_context, no_leaks):
    conn = LazyConnection(tls_address, ssl_context=untrusted_context)
    with no_leaks(), pytest.raises(ssl.SSLCertVerificationError):
        conn.__enter__()
    assert conn.connections == ()


def test_on_connect_raising_after_the_handshake_closes_the_tls_socket(
    LazyConnection, tls_address, trusting_context, no_leaks
):
    def refuse(sock):
        assert isinstance(sock, ssl.SSLSocket)
        raise LookupError("refused by the hook")

    conn = LazyConnection(tls_address, ssl_context=trusting_context, on_connect=refuse)
    with no_leaks(), pytest.raises(LookupError):
        conn.__enter__()
    assert conn.connections == ()


def test_wrong_hostname_is_rejected(LazyConnection, tls_address, trusting_context, no_leaks):
    conn = LazyConnection(
        tls_address, ssl_context=trusting_context, server_hostname="not-this-host.invalid"
    )
    with no_leaks(), pytest.raises(ssl.SSLCertVerificationError, match="match"):
        conn.__enter__()


def test_default_context_does_not_skip_verification(LazyConnection, tls_address):
    conn = LazyConnection(tls_address, ssl_context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.__enter__()


def test_a_passed_context_is_never_loosened(LazyConnection, tls_address, trusting_context):
    with LazyConnection(tls_address, ssl_context=trusting_context):
        pass
    assert trusting_context.verify_mode == ssl.CERT_REQUIRED
    assert trusting_context.check_hostname is True


# on_connect


def test_on_connect_sees_the_connected_socket(LazyConnection, tls_address, trusting_context):
    seen = []
    conn = LazyConnection(tls_address, ssl_context=trusting_context, on_connect=seen.append)
    with conn as sock:
        assert seen == [sock]
        assert isinstance(seen[0], ssl.SSLSocket)


def test_on_connect_raising_closes_the_socket_and_pushes_nothing(
    LazyConnection, echo_address, recording_factory, no_leaks
):
    def refuse(sock):
        raise ValueError("not this one")

    factory = recording_factory()
    conn = LazyConnection(echo_address, on_connect=refuse, socket_factory=factory)
    with no_leaks(), pytest.raises(ValueError, match="not this one"):
        conn.__enter__()
    assert factory.closed() == [True]
    assert conn.connections == ()


# retries and backoff


def test_retries_reconnect_after_a_refusal(
    LazyConnection, echo_address, refused_address, redirected, recording_factory
):
    factory = recording_factory(redirected(refused_address, refused_address, echo_address))
    conn = LazyConnection(echo_address, retries=2, backoff=0.001, socket_factory=factory)
    with conn as sock:
        assert sock.getpeername() == echo_address
    assert factory.closed() == [True, True, True]


def test_retries_give_up_with_the_last_error(
    LazyConnection, refused_address, recording_factory, no_leaks
):
    factory = recording_factory()
    conn = LazyConnection(refused_address, retries=3, backoff=0.001, socket_factory=factory)
    with no_leaks(), pytest.raises(ConnectionRefusedError):
        conn.__enter__()
    assert len(factory.made) == 4


def test_other_errors_are_not_retried(LazyConnection, echo_address, recording_factory):
    def refuse(sock):
        raise ValueError("no")

    factory = recording_factory()
    conn = LazyConnection(
        echo_address, retries=5, backoff=0.001, on_connect=refuse, socket_factory=factory
    )
    with pytest.raises(ValueError):
        conn.__enter__()
    assert len(factory.made) == 1


def test_nothing_is_retried_once_the_body_has_run(LazyConnection, echo_address, recording_factory):
    factory = recording_factory()
    conn = LazyConnection(echo_address, retries=5, backoff=0.001, socket_factory=factory)
    with pytest.raises(ConnectionResetError):
        with conn:
            raise ConnectionResetError
    assert len(factory.made) == 1


def test_keyboard_interrupt_is_never_retried(
    LazyConnection, echo_address, recording_factory, no_leaks
):
    def interrupt(sock):
        raise KeyboardInterrupt

    factory = recording_factory()
    conn = LazyConnection(echo_address, retries=5, on_connect=interrupt, socket_factory=factory)
    with no_leaks(), pytest.raises(KeyboardInterrupt):
        conn.__enter__()
    assert len(factory.made) == 1


def test_backoff_doubles_and_is_capped(LazyConnection, refused_address, monkeypatch):
    import lazyconnection._opening as opening

    slept = []
    monkeypatch.setattr(opening.time, "sleep", slept.append)
    conn = LazyConnection(refused_address, retries=5, backoff=1.5)
    with pytest.raises(ConnectionRefusedError):
        conn.__enter__()
    assert slept == [1.5, 3.0, 5.0, 5.0, 5.0]


# options attribute, copies


def test_options_show_what_was_given_and_the_defaults(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, timeout=3, retries=2)
    assert conn.options["timeout"] == 3.0
    assert conn.options["retries"] == 2
    assert conn.options["socket_options"] == ()
    assert conn.options["on_connect"] is None
    conn.options["retries"] = 99
    assert conn.options["retries"] == 2


def test_copies_keep_the_options(LazyConnection, echo_address):
    import copy
    import pickle

    conn = LazyConnection(echo_address, timeout=3, retries=2, socket_options=[(6, 1, 1)])
    for twin in (copy.copy(conn), copy.deepcopy(conn), pickle.loads(pickle.dumps(conn))):
        assert twin.options == conn.options
    default = LazyConnection(echo_address)
    assert pickle.loads(pickle.dumps(default)).options == default.options
