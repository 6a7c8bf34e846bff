"""Memory, measured rather than timed: bytes per idle instance, with tracemalloc."""

import sys
import tracemalloc

import pytest

INSTANCES = 100_000
ADDRESS = ("127.0.0.1", 9)


def bytes_per_instance(cls):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        instances = [cls(ADDRESS) for _ in range(INSTANCES)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before - sys.getsizeof(instances)) / len(instances)


@pytest.mark.benchmark(group="memory")
def test_memory(implementation, measurements):
    label, cls = implementation
    size = bytes_per_instance(cls)
    assert size > 0
    measurements[f"memory-{label}"] = size
