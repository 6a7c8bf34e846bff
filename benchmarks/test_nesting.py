"""Nesting: the cost of one enter/exit pair must not grow with how deep the stack is."""

import names
import pytest
from interleave import CPU, figure
from names import COMPILED, PURE

import lazyconnection

ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-in does no I/O
DEPTHS = (1, 10, 100, 1000)
GROUP = names.NESTING


def _name(implementation, depth):
    return f"{implementation}, depth {depth}"


def _blocks(conn, depth):
    """`loop(n)`: n blocks of `depth` nested enters followed by as many exits."""
    enter, exit_ = conn.__enter__, conn.__exit__
    levels = range(depth)

    def loop(n):
        for _ in range(n):
            for _ in levels:
                enter()
            for _ in levels:
                exit_(None, None, None)

    return loop


@pytest.fixture(scope="module")
def rounds(settings, stand_ins, figures):
    classes = {PURE: lazyconnection.PyLazyConnection}
    if lazyconnection.CLazyConnection is not None:
        classes[COMPILED] = lazyconnection.CLazyConnection
    loops = {
        _name(label, depth): _blocks(cls(ADDRESS, socket_factory=stand_ins.stand_in_factory), depth)
        for label, cls in classes.items()
        for depth in DEPTHS
    }
    rounds = settings.new_rounds(loops, CPU)
    yield rounds
    if rounds.count:
        figures.extend(derive(rounds, classes))


def derive(rounds, classes):
    """ns per enter/exit pair at each depth; compiled / pure and depth 1000 / depth 1."""
    result = []
    for depth in DEPTHS:
        for label in classes:
            name = _name(label, depth)
            per_pair = rounds.per_round(lambda t, name=name, depth=depth: t[name] / depth)
            what = f"per enter/exit pair at depth {depth}"
            result.append(figure(per_pair, "ns", group=GROUP, what=what, of=label))
        if COMPILED in classes:
            compiled, pure = _name(COMPILED, depth), _name(PURE, depth)
            ratios = rounds.per_round(lambda t, c=compiled, p=pure: t[c] / t[p])
            what = f"compiled / {PURE} at depth {depth}"
            result.append(figure(ratios, "ratio", group=GROUP, what=what, of=""))
    for label in classes:
        deep, shallow = _name(label, DEPTHS[-1]), _name(label, 1)
        growth = rounds.per_round(lambda t, d=deep, s=shallow: t[d] / DEPTHS[-1] / t[s])
        what = f"per-pair cost, depth {DEPTHS[-1]} / depth 1"
        result.append(figure(growth, "ratio", group=GROUP, what=what, of=label))
    return result


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("label", [COMPILED, PURE])
def test_nesting(benchmark, time_in_turn, rounds, label, depth):
    benchmark.extra_info["depth"] = depth
    unit = "block of `depth` nested enter/exit pairs"
    time_in_turn(benchmark, rounds, _name(label, depth), f"nesting, {label}", unit)
