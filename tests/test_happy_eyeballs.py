"""happy_eyeballs_delay: AF_UNSPEC attempts raced as RFC 8305 says, with nothing left open.

The dual-stack fixture resolves a test name to a ::1 listener whose backlog is full (a connect
to it hangs, as to a black-holed IPv6 address) and then to the 127.0.0.1 echo server. Every
test runs for both classes and, through `entered`, for `with` and `async with`.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
import time

import pytest

DELAY = 0.05  # short, so that the tests are quick; the README recommends RFC 8305's 0.25
TIMEOUT = 5.0  # what a sequential connect to the hanging address would wait out


def test_dual_stack_connects_over_ipv4_without_waiting_out_the_timeout(
    LazyConnection, dual_stack, echo_address, entered
):
    conn = LazyConnection(dual_stack, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, timeout=TIMEOUT)
    started = time.monotonic()
    assert entered(conn, lambda sock: sock.getpeername()) == echo_address
    assert time.monotonic() - started < TIMEOUT / 2


def test_the_hanging_ipv6_attempt_is_closed_once_ipv4_wins(
    LazyConnection, dual_stack, recording_factory, entered, no_leaks
):
    factory = recording_factory()
    conn = LazyConnection(
        dual_stack, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, socket_factory=factory
    )
    with no_leaks():
        families, closed = entered(
            conn, lambda sock: ([made.family for made in factory.made], factory.closed())
        )
    assert families == [socket.AF_INET6, socket.AF_INET]
    assert closed == [True, False]


def test_without_the_option_the_hanging_address_is_waited_out(
    LazyConnection, dual_stack, echo_address, entered
):
    timeout = 0.3
    conn = LazyConnection(dual_stack, socket.AF_UNSPEC, timeout=timeout)
    started = time.monotonic()
    assert entered(conn, lambda sock: sock.getpeername()) == echo_address
    assert time.monotonic() - started >= timeout


class _RefusedAtOnce(socket.socket):
    """A socket whose connect to port 1 is refused by connect itself, not by a later poll."""

    def connect(self, address):
        if address[1] == 1:
            raise ConnectionRefusedError("refused at once")
        super().connect(address)


@pytest.mark.parametrize("refusal", ["polled", "at once"])
def test_a_refused_attempt_starts_the_next_without_waiting_out_the_delay(
    LazyConnection, resolve_to, full_backlog6_address, refused_address, echo_address, entered,
    refusal,
):  # fmt: skip
    # The hanging address is still pending when the refused one fails: the echo server's
    # attempt starts then, one delay in, not after a second delay.
    delay = 0.5
    refused = refused_address if refusal == "polled" else ("127.0.0.1", 1)
    name = resolve_to(full_backlog6_address, refused, echo_address)
    conn = LazyConnection(
        name, socket.AF_UNSPEC, happy_eyeballs_delay=delay, socket_factory=_RefusedAtOnce
    )
    started = time.monotonic()
    assert entered(conn, lambda sock: sock.getpeername()) == echo_address
    assert delay <= time.monotonic() - started < 1.8 * delay


def test_attempts_alternate_families_from_the_resolvers_first_choice(
    LazyConnection, resolve_to, entered
):
    six_a, six_b = ("::1", 1, 0, 0), ("::1", 2, 0, 0)
    four_a, four_b = ("127.0.0.1", 3), ("127.0.0.1", 4)
    name = resolve_to(six_a, six_b, four_a, four_b)
    attempted = []

    class Refused(socket.socket):
        def connect(self, address):
            attempted.append(address)
            raise ConnectionRefusedError("refused, without touching the network")

    conn = LazyConnection(
        name, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, socket_factory=Refused
    )
    with pytest.raises(ConnectionRefusedError):
        entered(conn)
    assert attempted == [six_a, four_a, six_b, four_b]


def test_several_working_addresses_leave_exactly_one_socket_open(
    LazyConnection, resolve_to, echo_address, recording_factory, entered, no_leaks
):
    # A delay of 0 starts every attempt at once: each of them connects.
    name = resolve_to(echo_address, echo_address, echo_address)
    factory = recording_factory()
    conn = LazyConnection(name, socket.AF_UNSPEC, happy_eyeballs_delay=0, socket_factory=factory)

    def survivors(sock):
        return [made is sock for made in factory.made if made.fileno() != -1]

    with no_leaks():
        assert entered(conn, survivors) == [True]
    assert len(factory.made) == 3


def test_all_attempts_failing_raise_the_first_addresses_error(
    LazyConnection, resolve_to, full_backlog6_address, refused_address, entered, no_leaks
):
    # The refusal comes first in time, but the hanging address comes first in order.
    name = resolve_to(full_backlog6_address, refused_address)
    conn = LazyConnection(name, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, timeout=0.3)
    with no_leaks(), pytest.raises(socket.timeout):
        entered(conn)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in Python 3.11")
def test_all_attempts_failing_with_all_errors_raise_a_group_in_address_order(
    LazyConnection, resolve_to, full_backlog6_address, refused_address, entered, no_leaks
):
    name = resolve_to(full_backlog6_address, refused_address)
    conn = LazyConnection(
        name, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, timeout=0.3, all_errors=True
    )
    with no_leaks(), pytest.raises(ExceptionGroup) as caught:  # noqa: F821
        entered(conn)
    kinds = [type(error) for error in caught.value.exceptions]
    assert kinds == [socket.timeout, ConnectionRefusedError]


def test_timeout_bounds_the_whole_race_not_each_attempt(
    LazyConnection, resolve_to, full_backlog6_address, entered, no_leaks
):
    # Three hanging attempts, started 0.6 s apart: the race ends at 0.8 s; were the timeout
    # each attempt's own, the last would start at 1.2 s and end at 2.0 s (the bound between
    # leaves a loaded machine 0.6 s).
    timeout = 0.8
    name = resolve_to(*[full_backlog6_address] * 3)
    conn = LazyConnection(name, socket.AF_UNSPEC, happy_eyeballs_delay=0.6, timeout=timeout)
    with no_leaks():
        started = time.monotonic()  # the race alone: the leak check collects garbage
        with pytest.raises(socket.timeout):
            entered(conn)
        elapsed = time.monotonic() - started
    assert timeout <= elapsed < 1.4


def test_the_winner_is_handed_out_as_the_mode_hands_out_sockets(
    LazyConnection, dual_stack, entered
):
    conn = LazyConnection(dual_stack, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, timeout=2.5)
    expected = 2.5 if entered.mode == "with" else 0.0  # async: non-blocking
    assert entered(conn, lambda sock: sock.gettimeout()) == expected


def test_async_race_leaves_no_callbacks_on_the_loop(LazyConnection, dual_stack):
    descriptors = []

    def factory(*args):
        sock = socket.socket(*args)
        descriptors.append(sock.fileno())
        return sock

    conn = LazyConnection(
        dual_stack, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, socket_factory=factory
    )

    async def main():
        async with conn:
            pass
        loop = asyncio.get_running_loop()
        return [loop.remove_writer(fd) for fd in descriptors]  # True: one was still there

    assert asyncio.run(main()) == [False, False]


def test_on_connect_runs_once_on_the_winner_only(LazyConnection, dual_stack, entered):
    seen = []
    conn = LazyConnection(
        dual_stack, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, on_connect=seen.append
    )
    sock = entered(conn)
    assert seen == [sock]
    assert sock.family == socket.AF_INET


def test_tls_runs_on_the_winner(
    LazyConnection, resolve_to, full_backlog6_address, tls_address, trusting_context, no_leaks
):
    name = resolve_to(full_backlog6_address, tls_address)
    conn = LazyConnection(
        name,
        socket.AF_UNSPEC,
        happy_eyeballs_delay=DELAY,
        ssl_context=trusting_context,
        server_hostname="localhost",
    )
    with no_leaks():
        with conn as sock:
            assert isinstance(sock, ssl.SSLSocket)
            assert sock.getpeername() == tls_address
            assert sock.version() is not None  # the handshake is done


def test_a_failing_on_connect_closes_the_winner_too(LazyConnection, dual_stack, entered, no_leaks):
    def refuse(sock):
        raise LookupError("refused by the hook")

    conn = LazyConnection(
        dual_stack, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, on_connect=refuse
    )
    with no_leaks(), pytest.raises(LookupError):
        entered(conn)


def test_a_failed_handshake_on_the_winner_leaves_nothing_open(
    LazyConnection, resolve_to, full_backlog6_address, tls_address, untrusted_context, no_leaks
):
    name = resolve_to(full_backlog6_address, tls_address)
    conn = LazyConnection(
        name,
        socket.AF_UNSPEC,
        happy_eyeballs_delay=DELAY,
        ssl_context=untrusted_context,
        server_hostname="localhost",
    )
    with no_leaks(), pytest.raises(ssl.SSLCertVerificationError):
        conn.__enter__()


def test_a_retry_reruns_the_race(
    LazyConnection, resolve_to, echo_address, refused_address, redirected, recording_factory,
    entered,
):  # fmt: skip
    name = resolve_to(echo_address, echo_address)
    # The first race's two attempts are refused; the second race's first attempt connects.
    factory = recording_factory(redirected(refused_address, refused_address, echo_address))
    conn = LazyConnection(
        name,
        socket.AF_UNSPEC,
        happy_eyeballs_delay=DELAY,
        retries=1,
        backoff=0.001,
        socket_factory=factory,
    )
    peer, closed = entered(conn, lambda sock: (sock.getpeername(), factory.closed()))
    assert peer == echo_address
    assert closed == [True, True, False]


def test_one_address_is_connected_to_without_a_race(
    LazyConnection, resolve_to, echo_address, entered, monkeypatch
):
    from lazyconnection import _opening

    def no_race(*args):
        raise AssertionError("raced one address")

    monkeypatch.setattr(_opening, "_race", no_race)
    conn = LazyConnection(resolve_to(echo_address), socket.AF_UNSPEC, happy_eyeballs_delay=DELAY)
    assert entered(conn, lambda sock: sock.getpeername()) == echo_address


def test_cancelling_the_race_closes_every_attempt(
    LazyConnection, resolve_to, full_backlog6_address, full_backlog_address, no_leaks
):
    name = resolve_to(full_backlog6_address, full_backlog_address)
    conn = LazyConnection(name, socket.AF_UNSPEC, happy_eyeballs_delay=0.01, timeout=TIMEOUT)

    async def main():
        task = asyncio.ensure_future(conn.__aenter__())
        await asyncio.sleep(0.1)  # both attempts are under way by now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with no_leaks():
        asyncio.run(main())
    assert conn.connections == ()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_an_interrupt_during_the_race_closes_every_attempt(
    LazyConnection, resolve_to, full_backlog6_address, full_backlog_address, no_leaks
):
    name = resolve_to(full_backlog6_address, full_backlog_address)
    conn = LazyConnection(name, socket.AF_UNSPEC, happy_eyeballs_delay=0.01, timeout=TIMEOUT)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with no_leaks(), pytest.raises(KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, 0.1)  # both attempts are under way by then
            with conn:
                pytest.fail("neither address can connect")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert conn.connections == ()
