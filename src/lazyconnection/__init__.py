"""Lazy, nestable socket connections for the ``with`` statement."""

import os
import platform
from typing import TYPE_CHECKING, Optional, Type

from ._connection_py import LazyConnection as PyLazyConnection

__all__ = ("CLazyConnection", "LazyConnection", "PyLazyConnection")
__version__ = "0.1.0"


def _compiled_class() -> Optional[Type[PyLazyConnection]]:
    if platform.python_implementation() != "CPython" or os.environ.get(
        "LAZYCONNECTION_NO_EXTENSIONS"
    ):
        return None
    try:
        from ._connection_c import LazyConnection
    except ImportError:  # not built here; on CPython the test suite fails loudly
        return None
    # Typed as the pure-Python class: tests/test_stub.py holds both to one interface.
    return LazyConnection  # type: ignore[return-value]


CLazyConnection = _compiled_class()

if TYPE_CHECKING:  # one class to write in annotations, whichever is selected
    LazyConnection = PyLazyConnection
else:
    LazyConnection = CLazyConnection or PyLazyConnection
