"""Threads: four threads share one object, each nesting real connections to a loopback server."""

import threading

import names
import pytest
from interleave import figure
from names import COMPILED, PURE

import lazyconnection

THREADS = 4
CYCLES_PER_THREAD = 25  # each cycle opens two nested connections
CONNECTIONS = THREADS * CYCLES_PER_THREAD * 2
GROUP = names.THREADS


def _threads_loop(conn):
    """`loop(n)`: n times, four threads each open CYCLES_PER_THREAD pairs of connections."""

    def worker(failures):
        try:
            for _ in range(CYCLES_PER_THREAD):
                with conn as outer, conn as inner:
                    assert conn.connections == (outer, inner)
        except BaseException as error:
            failures.append(error)

    def loop(n):
        failures = []
        for _ in range(n):
            threads = [threading.Thread(target=worker, args=(failures,)) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert failures == []

    return loop


@pytest.fixture(scope="module")
def rounds(settings, tcp_address, figures):
    loops = {}
    if lazyconnection.CLazyConnection is not None:
        loops[COMPILED] = _threads_loop(lazyconnection.CLazyConnection(tcp_address))
    loops[PURE] = _threads_loop(lazyconnection.PyLazyConnection(tcp_address))
    rounds = settings.new_rounds(loops)
    yield rounds
    if rounds.count:
        figures.extend(derive(rounds))


def derive(rounds):
    result = [
        figure(rounds.per_round(lambda t, name=name: CONNECTIONS * 1e9 / t[name]),
               "connections/s", group=GROUP, what="throughput", of=name)
        for name in rounds.loops
    ]  # fmt: skip
    if COMPILED in rounds.loops:
        ratios = rounds.per_round(lambda t: t[PURE] / t[COMPILED])
        what = f"compiled / {PURE} throughput"
        result.append(figure(ratios, "ratio", group=GROUP, what=what, of=""))
    return result


@pytest.mark.parametrize("candidate", [COMPILED, PURE])
def test_threads(benchmark, time_in_turn, rounds, candidate):
    benchmark.extra_info["connections_per_operation"] = CONNECTIONS
    unit = f"run of {THREADS} threads opening {CONNECTIONS} connections"
    time_in_turn(benchmark, rounds, candidate, "threads", unit)
