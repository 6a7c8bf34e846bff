"""Dispatch: what one `with` costs when the socket's own calls cost next to nothing."""

import json
import os
import subprocess
import sys
from socket import AF_INET, SOCK_STREAM

import callgrind
import compile_stand_ins
import names
import pytest
import references
from interleave import CPU, Rounds, exact, figure
from names import COMPILED, EMPTY_LOOP, FLOOR, INLINE, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL

import lazyconnection

ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-in does no I/O
GROUP = names.TIMED
CANDIDATES = (COMPILED, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL, FLOOR, INLINE, EMPTY_LOOP)
INSTRUCTION_GROUPS = {callgrind.REAL: names.REAL, callgrind.STAND_IN: names.STAND_IN}
LAZY = (COMPILED, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL)
# Each round's millisecond per candidate, timed as slices in alternation (interleave.py):
# compiled and the floor cost nearly the same, and with whole-millisecond batches a busy
# neighbour moved their ratio by a quarter from one full run to the next.
SLICES = 8
# Fresh processes, each timing as many rounds as this one, whose rounds join this one's: on
# CPython 3.11, where a process's code happens to be loaded (address-space randomisation)
# moves compiled / floor by up to a tenth either way, alike in every round of that process.
WORKERS = 4


def _with_loop(context_manager):
    def loop(n):
        for _ in range(n):
            with context_manager:
                pass

    return loop


def _floor_loop(manager, factory):
    """The floor: an empty compiled context manager around the socket calls made inline."""

    def loop(n):
        for _ in range(n):
            with manager:
                sock = factory(AF_INET, SOCK_STREAM, 0)
                sock.connect(ADDRESS)
                sock.close()

    return loop


def _inline_loop(factory):
    """The stand-in's own calls without any `with`: subtracted to give dispatch overhead."""

    def loop(n):
        for _ in range(n):
            sock = factory(AF_INET, SOCK_STREAM, 0)
            sock.connect(ADDRESS)
            sock.close()

    return loop


def _empty_loop(n):
    """The loop alone: what a ratio's costs are measured above, as in the instruction counts."""
    for _ in range(n):
        pass


def _loops(stand_ins):
    """Every candidate's loop; the recipe calls `references.socket`, which must be the stand-in
    factory while they run."""
    factory = stand_ins.stand_in_factory
    loops = {}
    if lazyconnection.CLazyConnection is not None:
        conn = lazyconnection.CLazyConnection(ADDRESS, socket_factory=factory)
        loops[COMPILED] = _with_loop(conn)
    loops[PURE] = _with_loop(lazyconnection.PyLazyConnection(ADDRESS, socket_factory=factory))
    loops[RECIPE_STACK] = _with_loop(references.RecipeStackLazyConnection(ADDRESS))
    loops[RECIPE_THREAD_LOCAL] = _with_loop(references.RecipeThreadLocalLazyConnection(ADDRESS))
    loops[FLOOR] = _floor_loop(stand_ins.EmptyContextManager(), factory)
    loops[INLINE] = _inline_loop(factory)
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
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(references, "socket", stand_ins.stand_in_factory)
        rounds = settings.new_rounds(_loops(stand_ins), CPU, SLICES)
        yield rounds
    if rounds.count:
        for _ in range(0 if settings.quick else WORKERS):  # quick: this process alone
            for name, times in _worker_times(rounds.count, settings.seconds).items():
                rounds.times[name].extend(times)
        figures.extend(derive(rounds))


def derive(rounds):
    """Overhead per `with` above the socket calls made inline, by candidate; compiled's ratio
    to the others of the cost per `with` above an empty loop, which is what the instruction
    counts compare, and which a busy core moves less than a ratio of two small overheads."""
    present = [name for name in (*LAZY, FLOOR) if name in rounds.loops]
    result = [
        figure(rounds.per_round(lambda t, name=name: t[name] - t[INLINE]), "ns", group=GROUP,
               what="overhead per `with`", of=name)
        for name in present
    ]  # fmt: skip
    if COMPILED in present:
        for other in (PURE, RECIPE_STACK, FLOOR):
            ratios = rounds.per_round(
                lambda t, o=other: (t[COMPILED] - t[EMPTY_LOOP]) / (t[o] - t[EMPTY_LOOP])
            )
            result.append(figure(ratios, "ratio", group=GROUP, what=f"compiled / {other}", of=""))
    return result


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_dispatch(benchmark, time_in_turn, rounds, candidate):
    time_in_turn(benchmark, rounds, candidate, "dispatch", "`with` (stand-in socket)")


def test_instructions(settings, stand_ins, figures):
    """Not a timing: callgrind's instruction counts per `with`, exact where valgrind exists."""
    if not settings.callgrind:
        pytest.skip(settings.no_callgrind_because)
    compiled = lazyconnection.CLazyConnection is not None
    counts = callgrind.measure(os.path.dirname(stand_ins.__file__), compiled=compiled)
    for (sockets, candidate), value in counts.items():
        group = INSTRUCTION_GROUPS[sockets]
        figures.append(
            exact(
                value,
                "instructions",
                group=group,
                what="per `with` above an empty loop",
                of=candidate,
            )
        )
    dispatch = callgrind.overheads(counts)
    for (sockets, candidate), value in dispatch.items():
        figures.append(
            exact(
                value,
                "instructions",
                group=INSTRUCTION_GROUPS[sockets],
                what="overhead above the socket calls inline",
                of=candidate,
            )
        )
    for sockets in callgrind.SOCKETS:
        if (sockets, COMPILED) not in dispatch:
            continue
        for other in (PURE, RECIPE_STACK, FLOOR):
            ratio = dispatch[(sockets, COMPILED)] / dispatch[(sockets, other)]
            group = INSTRUCTION_GROUPS[sockets]
            figures.append(exact(ratio, "ratio", group=group, what=f"compiled / {other}", of=""))
    assert all(value > 0 for value in dispatch.values())


if __name__ == "__main__":  # a worker: python test_dispatch.py ROUNDS SECONDS
    _stand_ins = compile_stand_ins.load_stand_ins()
    references.socket = _stand_ins.stand_in_factory
    _rounds = Rounds(_loops(_stand_ins), int(sys.argv[1]), float(sys.argv[2]), CPU, SLICES)
    for _ in range(_rounds.max_rounds):
        _rounds.round()
    print(json.dumps(_rounds.times))
