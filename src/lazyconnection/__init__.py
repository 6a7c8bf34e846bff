"""Lazy, nestable socket connections for the ``with`` statement."""

from typing import TYPE_CHECKING

from ._connection import CLazyConnection, PyLazyConnection
from ._limit import PoolTimeout

PoolTimeout.__module__ = "lazyconnection"

__all__ = ("CLazyConnection", "LazyConnection", "PoolTimeout", "PyLazyConnection")
__version__ = "0.2.0.dev0"

if TYPE_CHECKING:  # one class to write in annotations, whichever is selected
    LazyConnection = PyLazyConnection
else:  # the compiled class where it was built and is allowed, else the pure-Python one
    LazyConnection = CLazyConnection or PyLazyConnection
