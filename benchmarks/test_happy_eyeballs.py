"""Happy Eyeballs: what racing saves where an address hangs, and costs where none does.

Against the sequential path: a dual-stack host with a hanging IPv6 address; two addresses
whose first answers at once (the race's own machinery); and one address (no race is run).

The dual-stack host is the test suite's fixture: a substitute resolver gives a ::1 listener
whose backlog is full (a connect to it hangs) and then a 127.0.0.1 server. Without the option
each `with` waits out `timeout` on ::1 before trying 127.0.0.1; with it, one delay. The delay
and timeout are short here so that the group runs in seconds; the saving scales with them.
"""

import contextlib
import socket

import names
import pytest
from conftest import rounds_by_key
from interleave import figure

import lazyconnection

DELAY = 0.05  # RFC 8305 recommends 0.25; shorter here only to keep the run short
TIMEOUT = 0.2  # what the sequential path waits out on the hanging address, every time
DUAL_STACK_NAME = "dual-stack.benchmark.invalid"
TWO_ADDRESSES_NAME = "two-addresses.benchmark.invalid"
IN_TURN = "in turn (no option)"
RACED = f"raced (delay {DELAY} s)"
CANDIDATES = (IN_TURN, RACED)


def _with_loop(conn):
    def loop(n):
        for _ in range(n):
            with conn:
                pass

    return loop


@contextlib.contextmanager
def _full_backlog_listener6():
    """A ::1 listener that never accepts, its backlog filled: connects to it hang."""
    with socket.socket(socket.AF_INET6) as listener, contextlib.ExitStack() as fillers:
        listener.bind(("::1", 0))
        listener.listen(0)
        for _ in range(8):  # the kernel queues one or two beyond the backlog
            filler = fillers.enter_context(socket.socket(socket.AF_INET6))
            filler.settimeout(0.2)
            try:
                filler.connect(listener.getsockname())
            except socket.timeout:
                break
        yield listener.getsockname()


@contextlib.contextmanager
def _resolving(name, *sockaddrs):
    """socket.getaddrinfo answers `name` with these addresses (IPv6 first), others as ever."""
    real = socket.getaddrinfo
    infos = [
        (socket.AF_INET6 if len(a) == 4 else socket.AF_INET, socket.SOCK_STREAM, 6, "", a)
        for a in sockaddrs
    ]

    def resolve(host, *args, **kwargs):
        return list(infos) if host == name else real(host, *args, **kwargs)

    socket.getaddrinfo = resolve
    try:
        yield (name, 80)
    finally:
        socket.getaddrinfo = real


@pytest.fixture(scope="module")
def resolved_names(tcp_address):
    """(dual-stack name, two-address name): each a (host, port) the substitute resolver knows."""
    try:
        hanging = _full_backlog_listener6()
        address = hanging.__enter__()
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    try:
        with _resolving(DUAL_STACK_NAME, address, tcp_address) as dual_stack:
            with _resolving(TWO_ADDRESSES_NAME, tcp_address, tcp_address) as two:
                yield dual_stack, two
    finally:
        hanging.__exit__(None, None, None)


def _candidates(address, **options):
    cls = lazyconnection.LazyConnection
    return {
        IN_TURN: _with_loop(cls(address, socket.AF_UNSPEC, **options)),
        RACED: _with_loop(cls(address, socket.AF_UNSPEC, happy_eyeballs_delay=DELAY, **options)),
    }


@pytest.fixture(scope="module")
def rounds_by_host(settings, resolved_names, tcp_address, figures):
    dual_stack, two_addresses = resolved_names
    hosts = {
        # The sequential path needs a timeout to get past the hanging address at all.
        names.HAPPY_EYEBALLS_DUAL: lambda: _candidates(dual_stack, timeout=TIMEOUT),
        names.HAPPY_EYEBALLS_FIRST: lambda: _candidates(two_addresses),
        # A numeric host resolves without a lookup: one address, nothing to race.
        names.HAPPY_EYEBALLS_SINGLE: lambda: _candidates(tcp_address),
    }
    yield from rounds_by_key(settings, figures, hosts, derive)


def derive(group, rounds):
    """µs per connect+close of each; raced / in turn, or raced above in turn (%)."""
    compiled = lazyconnection.LazyConnection is lazyconnection.CLazyConnection
    implementation = names.COMPILED if compiled else names.PURE
    result = [
        figure(rounds.per_round(lambda t, name=name: t[name] / 1000), "µs", group=group,
               what=f"per connect+close ({implementation})", of=name)
        for name in CANDIDATES
    ]  # fmt: skip
    if group == names.HAPPY_EYEBALLS_DUAL:
        ratios = rounds.per_round(lambda t: t[RACED] / t[IN_TURN])
        result.append(figure(ratios, "ratio", group=group, what="raced / in turn", of=""))
    else:
        excess = rounds.per_round(lambda t: (t[RACED] / t[IN_TURN] - 1) * 100)
        result.append(figure(excess, "%", group=group, what="raced above in turn", of=RACED))
    return result


HOSTS = {
    "dual-stack": names.HAPPY_EYEBALLS_DUAL,
    "first answers": names.HAPPY_EYEBALLS_FIRST,
    "one address": names.HAPPY_EYEBALLS_SINGLE,
}


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("candidate", CANDIDATES)
def test_happy_eyeballs(benchmark, time_in_turn, rounds_by_host, host, candidate):
    group = HOSTS[host]
    time_in_turn(benchmark, rounds_by_host(group), candidate, group, "connect+close")
