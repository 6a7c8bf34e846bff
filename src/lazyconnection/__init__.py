"""Lazy, nestable socket connections for the ``with`` statement."""

import os
import platform
from typing import TYPE_CHECKING, Optional, Type

from ._connection_py import LazyConnection as PyLazyConnection

__all__ = ("CLazyConnection", "LazyConnection", "PyLazyConnection")
__version__ = "0.1.0"

CLazyConnection: Optional[Type[PyLazyConnection]] = None
if platform.python_implementation() == "CPython" and not os.environ.get(
    "LAZYCONNECTION_NO_EXTENSIONS"
):
    try:
        from ._connection_c import LazyConnection as CLazyConnection
    except ImportError:  # not built here: the test suite fails loudly on CPython
        pass

if TYPE_CHECKING:
    # One class for annotations; both implementations share this interface.
    LazyConnection = PyLazyConnection
else:
    LazyConnection = CLazyConnection or PyLazyConnection
