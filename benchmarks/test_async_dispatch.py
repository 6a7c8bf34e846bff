"""Async dispatch: what one `async with` costs when the loop's connect costs next to nothing."""

from socket import AF_INET, SOCK_STREAM

import names
import pytest
import references
from interleave import CPU, figure
from names import COMPILED, INLINE, PURE

import lazyconnection

ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-ins do no I/O
GROUP = names.ASYNC
CANDIDATES = (COMPILED, PURE, INLINE)


@pytest.fixture(scope="module")
def rounds(settings, stand_ins, figures):
    loop = references.StandInEventLoop()
    factory = stand_ins.stand_in_factory

    def async_with_loop(conn):
        async def run(n):
            for _ in range(n):
                async with conn:
                    pass

        return lambda n: loop.run_until_complete(run(n))

    async def inline(n):
        """The stand-ins' own calls without any `async with`: subtracted to give overhead."""
        for _ in range(n):
            sock = factory(AF_INET, SOCK_STREAM, 0)
            sock.setblocking(False)
            await loop.sock_connect(sock, ADDRESS)
            sock.close()

    loops = {}
    if lazyconnection.CLazyConnection is not None:
        conn = lazyconnection.CLazyConnection(ADDRESS, socket_factory=factory)
        loops[COMPILED] = async_with_loop(conn)
    conn = lazyconnection.PyLazyConnection(ADDRESS, socket_factory=factory)
    loops[PURE] = async_with_loop(conn)
    loops[INLINE] = lambda n: loop.run_until_complete(inline(n))
    try:
        rounds = settings.new_rounds(loops, CPU)
        yield rounds
    finally:
        loop.close()
    if rounds.count:
        figures.extend(derive(rounds))


def derive(rounds):
    overhead = {name: (lambda t, name=name: t[name] - t[INLINE]) for name in (COMPILED, PURE)}
    present = [name for name in overhead if name in rounds.loops]
    result = [
        figure(rounds.per_round(overhead[name]), "ns", group=GROUP,
               what="overhead per `async with`", of=name)
        for name in present
    ]  # fmt: skip
    if COMPILED in present:
        ratios = rounds.per_round(lambda t: overhead[COMPILED](t) / overhead[PURE](t))
        result.append(figure(ratios, "ratio", group=GROUP, what=f"compiled / {PURE}", of=""))
    return result


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_async_dispatch(benchmark, time_in_turn, rounds, candidate):
    time_in_turn(benchmark, rounds, candidate, "async dispatch", "`async with` (stand-in)")
