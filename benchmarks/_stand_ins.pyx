# cython: language_level=3, binding=False
"""Compiled stand-ins for the dispatch group: next to free, as a real socket's C calls are.

Compiled on the spot by the benchmark suite (pyximport); checked by test_references.py.
"""

from cpython.contextvars cimport PyContextVar_Set

from contextvars import ContextVar
from socket import AF_INET, SOCK_STREAM


cdef class EmptyContextManager:
    """The floor: the cheapest compiled context manager, whose `with` costs only the dispatch."""

    def __enter__(self):
        pass

    def __exit__(self, exc_type, exc, tb):
        pass


# What ContextVariableSetter sets: a variable of its own, read as a C variable, as the
# library's is (a module global would add a dict lookup from 3.12, where Cython caches none).
cdef object _variable = ContextVar("stand-in")
VARIABLE = _variable


cdef class ContextVariableSetter:
    """The floor with one context variable set on enter, as a context's first `with` of a
    connection sets the one a copy of the context inherits: in a fresh Context, its extra over
    EmptyContextManager is what that first `with` cannot do without."""

    def __enter__(self):
        PyContextVar_Set(_variable, self)  # its token made and dropped, as the kernel's is

    def __exit__(self, exc_type, exc, tb):
        pass


cdef class EmptyAsyncContextManager:
    """The floor for `async with`: the cheapest compiled asynchronous context manager."""

    async def __aenter__(self):
        pass

    async def __aexit__(self, exc_type, exc, tb):
        pass


cdef class StandInSocket:
    """A socket whose connect and close do nothing, so that only dispatch is left to time."""

    def connect(self, address):
        pass

    def setblocking(self, flag):
        pass

    def close(self):
        pass


# One shared instance: making a new one per call would time the allocator, not dispatch.
cdef StandInSocket _STAND_IN = StandInSocket()


def stand_in_factory(family=AF_INET, type=SOCK_STREAM, proto=0):
    """A socket_factory, and the recipe's `socket` when patched: returns one StandInSocket."""
    return _STAND_IN
