"""Async dispatch: what one `async with` costs when the loop's connect costs next to nothing."""

from socket import AF_INET, SOCK_STREAM

import names
import pytest
import references
from interleave import CPU, figure
from names import COMPILED, EMPTY_LOOP, FLOOR, INLINE, PURE

import lazyconnection

ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-ins do no I/O
GROUP = names.ASYNC
CANDIDATES = (COMPILED, PURE, FLOOR, INLINE, EMPTY_LOOP)
# pytest-benchmark's unit: one event-loop run, whose own cost would swamp a single `async with`.
WITHS_PER_RUN = 100


@pytest.fixture(scope="module")
def rounds(settings, stand_ins, figures):
    loop = references.StandInEventLoop()
    factory = stand_ins.stand_in_factory

    def on_loop(coroutine_function):
        """`loop(n)`: one run of the event loop that awaits `coroutine_function(n)`."""
        return lambda n: loop.run_until_complete(coroutine_function(n))

    def async_with(manager):
        async def run(n):
            for _ in range(n):
                async with manager:
                    pass

        return run

    async def inline(n):
        """The stand-ins' own calls without any `async with`: subtracted to give overhead."""
        for _ in range(n):
            sock = factory(AF_INET, SOCK_STREAM, 0)
            sock.setblocking(False)
            await loop.sock_connect(sock, ADDRESS)
            sock.close()

    async def floor(n):
        """An empty compiled asynchronous context manager around the same calls made inline."""
        for _ in range(n):
            async with manager:
                sock = factory(AF_INET, SOCK_STREAM, 0)
                sock.setblocking(False)
                await loop.sock_connect(sock, ADDRESS)
                sock.close()

    async def empty(n):
        """The loop alone: what a ratio's costs are measured above."""
        for _ in range(n):
            pass

    manager = stand_ins.EmptyAsyncContextManager()

    loops = {}
    if lazyconnection.CLazyConnection is not None:
        conn = lazyconnection.CLazyConnection(ADDRESS, socket_factory=factory)
        loops[COMPILED] = on_loop(async_with(conn))
    conn = lazyconnection.PyLazyConnection(ADDRESS, socket_factory=factory)
    loops[PURE] = on_loop(async_with(conn))
    loops[FLOOR] = on_loop(floor)
    loops[INLINE] = on_loop(inline)
    loops[EMPTY_LOOP] = on_loop(empty)
    try:
        rounds = settings.new_rounds(loops, CPU)
        yield rounds
    finally:
        loop.close()
    if rounds.count:
        figures.extend(derive(rounds))


def derive(rounds):
    """As the dispatch group: overhead above the calls made inline; ratios of the cost per
    `async with` above an empty loop."""
    present = [name for name in (COMPILED, PURE, FLOOR) if name in rounds.loops]
    result = [
        figure(rounds.per_round(lambda t, name=name: t[name] - t[INLINE]), "ns", group=GROUP,
               what="overhead per `async with`", of=name)
        for name in present
    ]  # fmt: skip
    if COMPILED in present:
        for other in (PURE, FLOOR):
            ratios = rounds.per_round(
                lambda t, o=other: (t[COMPILED] - t[EMPTY_LOOP]) / (t[o] - t[EMPTY_LOOP])
            )
            result.append(figure(ratios, "ratio", group=GROUP, what=f"compiled / {other}", of=""))
    return result


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_async_dispatch(benchmark, time_in_turn, rounds, candidate):
    unit = f"event-loop run of {WITHS_PER_RUN} `async with`s (stand-in)"
    time_in_turn(benchmark, rounds, candidate, "async dispatch", unit, WITHS_PER_RUN)
