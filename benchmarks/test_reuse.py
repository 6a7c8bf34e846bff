"""Reuse (pool_size): a checkout+return against other pools, and requests over kept sockets."""

import socket

import names
import pytest
import reuse
from interleave import CPU, WALL, figure
from names import COMPILED, HELD, PER_WITH, PURE, REDIS, URLLIB3
from names import REUSE_BEST_OTHER as BEST_OTHER

import lazyconnection

END_TO_END = (COMPILED, PURE, HELD, PER_WITH)


@pytest.fixture(scope="module")
def checkout_rounds(settings, echo_address, figures):
    made = {c: reuse.make(c, echo_address) for c in reuse.CANDIDATES if reuse.available(c)}
    rounds = settings.new_rounds({name: loop for name, (loop, _) in made.items()}, CPU)
    yield rounds
    for _, close in made.values():
        close()
    if rounds.count:
        figures.extend(derive_checkout(rounds, names.REUSE_TIMED, "ns"))


def derive_checkout(rounds, group, unit):
    """ns per checkout+return by candidate, and compiled's ratios, per round."""
    result = [
        figure(rounds.per_round(lambda t, name=name: t[name]), unit, group=group,
               what="per checkout+return", of=name)
        for name in rounds.loops
    ]  # fmt: skip
    if COMPILED not in rounds.loops:
        return result
    for other, among in ((PURE, (PURE,)), (BEST_OTHER, (REDIS, URLLIB3))):
        present = [name for name in among if name in rounds.loops]
        if not present:
            continue
        ratios = rounds.per_round(lambda t, p=present: t[COMPILED] / min(t[n] for n in p))
        result.append(figure(ratios, "ratio", group=group, what=f"compiled / {other}", of=""))
    return result


@pytest.mark.parametrize("candidate", reuse.CANDIDATES)
def test_checkout(benchmark, time_in_turn, checkout_rounds, candidate):
    time_in_turn(benchmark, checkout_rounds, candidate, "reuse", "checkout+return")


def test_checkout_instructions(settings, echo_address, figures, progress):
    """Not a timing: callgrind's instructions per checkout+return, exact where valgrind exists."""
    if not settings.callgrind:
        pytest.skip(settings.no_callgrind_because)
    with progress("callgrind, one process: about 15 s"):
        counts = reuse.instructions(echo_address)
    figures.extend(reuse.figures(counts))
    assert all(value > 0 for value in counts.values())


def _request_loop(conn):
    def loop(n):
        for _ in range(n):
            with conn as sock:
                sock.sendall(b"x")
                sock.recv(1)

    return loop


def _held_loop(sock):
    def loop(n):
        for _ in range(n):
            sock.sendall(b"x")
            sock.recv(1)

    return loop


@pytest.fixture(scope="module")
def request_rounds(settings, echo_address, figures):
    loops = {}
    if lazyconnection.CLazyConnection is not None:
        pooled = lazyconnection.CLazyConnection(echo_address, pool_size=1)
        loops[COMPILED] = _request_loop(pooled)
        loops[PER_WITH] = _request_loop(lazyconnection.CLazyConnection(echo_address))
    pure = lazyconnection.PyLazyConnection(echo_address, pool_size=1)
    loops[PURE] = _request_loop(pure)
    with socket.create_connection(echo_address) as held:
        loops[HELD] = _held_loop(held)
        rounds = settings.new_rounds(loops, WALL)
        yield rounds
    pure.close_idle()
    if COMPILED in loops:
        pooled.close_idle()
    if rounds.count:
        figures.extend(derive_requests(rounds))


def derive_requests(rounds):
    """Requests per second by candidate, and the pooled object's against the others (higher
    is better: a pooled request as fast as one over a socket held by hand reads 1.00)."""
    group = names.REUSE_END_TO_END
    result = [
        figure(rounds.per_round(lambda t, name=name: 1e9 / t[name]), "requests/s", group=group,
               what="1-byte requests per second", of=name)
        for name in rounds.loops
    ]  # fmt: skip
    if COMPILED in rounds.loops:
        for other in (HELD, PER_WITH):
            ratios = rounds.per_round(lambda t, o=other: t[o] / t[COMPILED])
            what = f"requests per second, compiled pooled / {other}"
            result.append(figure(ratios, "ratio", group=group, what=what, of=""))
    return result


@pytest.mark.parametrize("candidate", END_TO_END)
def test_requests(benchmark, time_in_turn, request_rounds, candidate):
    time_in_turn(benchmark, request_rounds, candidate, "reuse, end to end", "request and reply")
