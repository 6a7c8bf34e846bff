"""Nesting: the cost of one enter/exit pair must not grow with how deep the stack is."""

import pytest

PAIRS_PER_CALL = 1000
ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-in does no I/O


@pytest.mark.parametrize("depth", [1, 10, 100, 1000])
def test_nesting(benchmark, implementation, stand_ins, depth):
    label, cls = implementation
    benchmark.group = f"nesting-{label}"
    benchmark.extra_info.update(depth=depth, withs_per_call=PAIRS_PER_CALL)
    conn = cls(ADDRESS, socket_factory=stand_ins.stand_in_factory)
    enter, exit_ = conn.__enter__, conn.__exit__
    levels = range(depth)
    rounds = range(PAIRS_PER_CALL // depth)

    def run():
        for _ in rounds:
            for _ in levels:
                enter()
            for _ in levels:
                exit_(None, None, None)

    benchmark(run)
    assert conn.connections == ()
