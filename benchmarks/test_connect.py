"""End to end: a real connect and close to a loopback server, per candidate and raw.

Timed with the thread's CPU clock (user and system: the connect's kernel work runs in this
thread), in short slices alternating between candidates, so that the figures are the
client's own cost. With a wall clock, which also counts the server process and any other
process the core serves meanwhile, the spread of compiled above raw ran from about -50 % to
+270 % beside a CPU hog, wide enough to contain any limit.
"""

import socket

import names
import pytest
import references
from conftest import rounds_by_key
from interleave import CPU, figure
from names import COMPILED, CREATE_CONNECTION, PURE, RAW, RECIPE_STACK

import lazyconnection

TRANSPORTS = ("tcp", "unix")
SLICES = 8  # as in the dispatch group: compiled and raw cost nearly the same
CANDIDATES = (RAW, COMPILED, PURE, RECIPE_STACK, CREATE_CONNECTION)


def _with_loop(conn):
    def loop(n):
        for _ in range(n):
            with conn:
                pass

    return loop


def _raw_loop(family, address):
    def loop(n):
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.connect(address)
            sock.close()

    return loop


def _create_connection_loop(address):
    def loop(n):
        for _ in range(n):
            socket.create_connection(address).close()

    return loop


def _loops(family, address):
    loops = {RAW: _raw_loop(family, address)}
    if lazyconnection.CLazyConnection is not None:
        loops[COMPILED] = _with_loop(lazyconnection.CLazyConnection(address, family))
    loops[PURE] = _with_loop(lazyconnection.PyLazyConnection(address, family))
    loops[RECIPE_STACK] = _with_loop(references.RecipeStackLazyConnection(address, family))
    if family == socket.AF_INET:  # create_connection is for TCP and UDP addresses only
        loops[CREATE_CONNECTION] = _create_connection_loop(address)
    return loops


@pytest.fixture(scope="module")
def rounds_by_transport(settings, tcp_address, unix_path, figures):
    addresses = {"tcp": (socket.AF_INET, tcp_address), "unix": (socket.AF_UNIX, unix_path)}
    loops = {transport: lambda t=transport: _loops(*addresses[t]) for transport in addresses}
    yield from rounds_by_key(settings, figures, loops, derive, CPU, SLICES)


def derive(transport, rounds):
    """µs per connect+close, % above raw, and compiled / create_connection, per round."""
    group = {"tcp": names.TCP, "unix": names.UNIX}[transport]
    result = [
        figure(rounds.per_round(lambda t, name=name: t[name] / 1000), "µs", group=group,
               what="per connect+close", of=name)
        for name in rounds.loops
    ]  # fmt: skip
    for name in rounds.loops:
        if name != RAW:
            excess = rounds.per_round(lambda t, name=name: (t[name] / t[RAW] - 1) * 100)
            result.append(figure(excess, "%", group=group, what="above raw socket", of=name))
    if COMPILED in rounds.loops and CREATE_CONNECTION in rounds.loops:
        ratios = rounds.per_round(lambda t: t[COMPILED] / t[CREATE_CONNECTION])
        what = f"compiled / {CREATE_CONNECTION}"
        result.append(figure(ratios, "ratio", group=group, what=what, of=""))
    return result


# create_connection takes host and port: it has no Unix-socket form.
@pytest.mark.parametrize(
    ("transport", "candidate"),
    [(t, c) for t in TRANSPORTS for c in CANDIDATES if (t, c) != ("unix", CREATE_CONNECTION)],
)
def test_connect(benchmark, time_in_turn, rounds_by_transport, transport, candidate):
    group = f"connect+close over {transport}"
    time_in_turn(benchmark, rounds_by_transport(transport), candidate, group, "connect+close")
