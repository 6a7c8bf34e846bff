"""Dispatch: what one `with` costs when the socket's own calls cost next to nothing."""

import json
import os
import socket
import subprocess
import sys
from socket import AF_INET, SOCK_DGRAM, SOCK_STREAM

import async_counts
import callgrind
import compile_stand_ins
import names
import pytest
import references
from interleave import CPU, Rounds, figure
from names import COMPILED, EMPTY_LOOP, FLOOR, INLINE, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL

import lazyconnection

ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-in does no I/O
GROUP = names.TIMED
REAL_GROUP = names.REAL_TIMED
CANDIDATES = (COMPILED, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL, FLOOR, INLINE, EMPTY_LOOP)
LAZY = (COMPILED, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL)
# Each round's millisecond per candidate, timed as slices in alternation (interleave.py):
# compiled and the floor cost nearly the same, and with whole-millisecond batches a busy
# neighbour moved their ratio by a quarter from one full run to the next.
SLICES = 8
# A full run's fresh processes (Mode.workers), each timing as many rounds as this one, whose
# rounds join this one's: on CPython 3.11, where a process's code happens to be loaded
# (address-space randomisation) moves compiled / floor by up to a tenth either way, alike in
# every round of that process.


def _with_loop(context_manager):
    def loop(n):
        for _ in range(n):
            with context_manager:
                pass

    return loop


def _floor_loop(manager, factory, kind=SOCK_STREAM):
    """The floor: an empty compiled context manager around the socket calls made inline."""

    def loop(n):
        for _ in range(n):
            with manager:
                sock = factory(AF_INET, kind, 0)
                sock.connect(ADDRESS)
                sock.close()

    return loop


def _inline_loop(factory, kind=SOCK_STREAM):
    """The socket's own calls without any `with`: subtracted to give dispatch overhead."""

    def loop(n):
        for _ in range(n):
            sock = factory(AF_INET, kind, 0)
            sock.connect(ADDRESS)
            sock.close()

    return loop


def _with_stand_in(loop, factory):
    """The recipe calls its module's `socket`: the stand-in factory while `loop` runs only,
    so that the real-socket group's recipe keeps real sockets."""

    def run(n):
        references.socket = factory
        try:
            loop(n)
        finally:
            references.socket = socket.socket

    return run


def _empty_loop(n):
    """The loop alone: what a ratio's costs are measured above, as in the instruction counts."""
    for _ in range(n):
        pass


def _loops(stand_ins):
    """Every candidate's loop, with the stand-in socket."""
    factory = stand_ins.stand_in_factory
    loops = {}
    if lazyconnection.CLazyConnection is not None:
        conn = lazyconnection.CLazyConnection(ADDRESS, socket_factory=factory)
        loops[COMPILED] = _with_loop(conn)
    loops[PURE] = _with_loop(lazyconnection.PyLazyConnection(ADDRESS, socket_factory=factory))
    stack = _with_loop(references.RecipeStackLazyConnection(ADDRESS))
    loops[RECIPE_STACK] = _with_stand_in(stack, factory)
    thread_local = _with_loop(references.RecipeThreadLocalLazyConnection(ADDRESS))
    loops[RECIPE_THREAD_LOCAL] = _with_stand_in(thread_local, factory)
    loops[FLOOR] = _floor_loop(stand_ins.EmptyContextManager(), factory)
    loops[INLINE] = _inline_loop(factory)
    loops[EMPTY_LOOP] = _empty_loop
    return loops


def _real_loops(stand_ins):
    """The same candidates with real UDP sockets, as callgrind counts them (connect only
    records the peer): their CPU time, user and system, shows what the counts leave out."""
    loops = {}
    if lazyconnection.CLazyConnection is not None:
        loops[COMPILED] = _with_loop(lazyconnection.CLazyConnection(ADDRESS, AF_INET, SOCK_DGRAM))
    loops[PURE] = _with_loop(lazyconnection.PyLazyConnection(ADDRESS, AF_INET, SOCK_DGRAM))
    stack = references.RecipeStackLazyConnection(ADDRESS, AF_INET, SOCK_DGRAM)
    loops[RECIPE_STACK] = _with_loop(stack)
    thread_local = references.RecipeThreadLocalLazyConnection(ADDRESS)
    thread_local.type = SOCK_DGRAM  # it ignores its `type` argument (the copied bug)
    loops[RECIPE_THREAD_LOCAL] = _with_loop(thread_local)
    loops[FLOOR] = _floor_loop(stand_ins.EmptyContextManager(), socket.socket, SOCK_DGRAM)
    loops[INLINE] = _inline_loop(socket.socket, SOCK_DGRAM)
    loops[EMPTY_LOOP] = _empty_loop
    return loops


def _worker_times(count, seconds):
    """Per-operation times by candidate of `count` rounds timed in a fresh process."""
    run = subprocess.run(
        [sys.executable, __file__, str(count), str(seconds)],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    )  # fmt: skip
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def rounds(settings, stand_ins, figures):
    rounds = settings.new_rounds(_loops(stand_ins), CPU, SLICES)
    yield rounds
    if rounds.count:
        for _ in range(settings.mode.workers):
            for name, times in _worker_times(rounds.count, settings.seconds).items():
                rounds.times[name].extend(times)
        figures.extend(derive(rounds, GROUP))


@pytest.fixture(scope="module")
def real_rounds(settings, stand_ins, figures):
    rounds = settings.new_rounds(_real_loops(stand_ins), CPU, SLICES)
    yield rounds
    if rounds.count:
        figures.extend(derive(rounds, REAL_GROUP))


def derive(rounds, group):
    """Overhead per `with` above the socket calls made inline, by candidate; compiled's ratio
    to the others of the cost per `with` above an empty loop, which is what the instruction
    counts compare, and which a busy core moves less than a ratio of two small overheads."""
    present = [name for name in (*LAZY, FLOOR) if name in rounds.loops]
    result = [
        figure(rounds.per_round(lambda t, name=name: t[name] - t[INLINE]), "ns", group=group,
               what="overhead per `with`", of=name)
        for name in present
    ]  # fmt: skip
    if COMPILED in present:
        for other in (PURE, RECIPE_STACK, FLOOR):
            ratios = rounds.per_round(
                lambda t, o=other: (t[COMPILED] - t[EMPTY_LOOP]) / (t[o] - t[EMPTY_LOOP])
            )
            result.append(figure(ratios, "ratio", group=group, what=f"compiled / {other}", of=""))
    return result


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_dispatch(benchmark, time_in_turn, rounds, candidate):
    time_in_turn(benchmark, rounds, candidate, "dispatch", "`with` (stand-in socket)")


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_dispatch_real_socket(benchmark, time_in_turn, real_rounds, candidate):
    time_in_turn(benchmark, real_rounds, candidate, "dispatch", "`with` (real UDP socket)")


def test_instructions(settings, stand_ins, echo_address, figures, progress):
    """Not a timing: callgrind's instruction counts per `with` and per `async with` (no pool,
    pooled, a context's first), exact where valgrind exists."""
    if not settings.callgrind:
        pytest.skip(settings.no_callgrind_because)
    with progress("callgrind, three processes: about 45 s"):
        counts, asynchronous = async_counts.measure(os.path.dirname(stand_ins.__file__),
                                                    echo_address)  # fmt: skip
    figures.extend(callgrind.figures(counts))
    assert all(value > 0 for value in callgrind.overheads(counts).values())
    new = async_counts.figures(asynchronous, async_counts.later_with(counts))
    figures.extend(new)
    by_key = {(f["group"], f["what"], f["of"]): f["value"] for f in new}
    missing = [key for key in async_counts.expected() if key not in by_key]
    assert missing == []
    assert all(value > 0 for value in by_key.values()), by_key


if __name__ == "__main__":  # a worker: python test_dispatch.py ROUNDS SECONDS
    _stand_ins = compile_stand_ins.load_stand_ins()
    _rounds = Rounds(_loops(_stand_ins), int(sys.argv[1]), float(sys.argv[2]), CPU, SLICES)
    for _ in range(_rounds.max_rounds):
        _rounds.round()
    print(json.dumps(_rounds.times))
