"""Memory, measured rather than timed: bytes per idle instance, with tracemalloc."""

import sys
import tracemalloc

from interleave import exact
from names import MEMORY

INSTANCES = 20_000  # 100,000 took half a minute under tracemalloc, to the same bytes
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


def test_memory(implementation, figures):
    label, cls = implementation
    size = bytes_per_instance(cls)
    assert size > 0
    figures.append(exact(size, "bytes", group=MEMORY, what="bytes per idle instance", of=label))
