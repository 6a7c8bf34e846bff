"""Async dispatch: what one `async with` costs when the loop's connect costs next to nothing."""

from socket import AF_INET, SOCK_STREAM

import pytest
import references

import lazyconnection

WITHS_PER_CALL = 100
ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-ins do no I/O
_REPEAT = range(WITHS_PER_CALL)

pytestmark = pytest.mark.benchmark(group="async-dispatch")


@pytest.fixture
def loop():
    loop = references.StandInEventLoop()
    yield loop
    loop.close()


def _time_async_with(benchmark, loop, conn):
    async def run():
        for _ in _REPEAT:
            async with conn:
                pass

    benchmark.extra_info["withs_per_call"] = WITHS_PER_CALL
    benchmark(lambda: loop.run_until_complete(run()))
    assert conn.connections == ()


def test_async_compiled(benchmark, loop, compiled_class, stand_ins):
    conn = compiled_class(ADDRESS, socket_factory=stand_ins.stand_in_factory)
    _time_async_with(benchmark, loop, conn)


def test_async_pure_python(benchmark, loop, stand_ins):
    conn = lazyconnection.PyLazyConnection(ADDRESS, socket_factory=stand_ins.stand_in_factory)
    _time_async_with(benchmark, loop, conn)


def test_async_baseline_stand_in_calls_inline(benchmark, loop, stand_ins):
    """The stand-ins' own calls without any `async with`: subtracted to give the overhead."""
    factory = stand_ins.stand_in_factory

    async def run():
        for _ in _REPEAT:
            sock = factory(AF_INET, SOCK_STREAM, 0)
            sock.setblocking(False)
            await loop.sock_connect(sock, ADDRESS)
            sock.close()

    benchmark.extra_info["withs_per_call"] = WITHS_PER_CALL
    benchmark(lambda: loop.run_until_complete(run()))
