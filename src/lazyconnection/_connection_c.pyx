# cython: language_level=3
"""The compiled LazyConnection: the pure-Python twin (_connection_py.py) with the `with` path in C."""

cimport cython
from cpython.contextvars cimport PyContextVar_Reset, PyContextVar_Set, get_value

from contextvars import ContextVar
from socket import AF_INET, SOCK_STREAM

from ._config import (
    ALREADY_CONNECTED,
    FOREIGN_CONNECTION,
    NO_OPEN_CONNECTION,
    check_arguments,
    depth_limit,
    describe,
    reduce,
)


@cython.final
@cython.freelist(16)
cdef class _Frame:
    """One open socket of a stack; the stack lives in a context variable as linked frames."""

    cdef object sock
    cdef _Frame parent
    cdef Py_ssize_t depth
    cdef object token


cdef class LazyConnection:
    """A socket connection opened by ``with`` and closed when the block ends.

    Nested blocks get independent sockets. Each thread, asyncio task and
    greenlet keeps its own stack of open sockets.
    """

    cdef readonly object address
    cdef readonly object family
    cdef readonly object type
    cdef readonly object proto
    cdef readonly object max_depth
    cdef readonly object socket_factory
    cdef Py_ssize_t _depth_limit
    cdef object _stack
    cdef object __weakref__

    def __init__(
        self,
        address,
        family=AF_INET,
        type=SOCK_STREAM,
        proto=0,
        *,
        max_depth=None,
        socket_factory=None,
    ):
        (
            self.address,
            self.family,
            self.type,
            self.proto,
            self.max_depth,
            self.socket_factory,
        ) = check_arguments(address, family, type, proto, max_depth, socket_factory)
        self._depth_limit = depth_limit(self.max_depth)
        # Context variables, unlike thread locals, also separate asyncio tasks and greenlets.
        self._stack = ContextVar("lazyconnection", default=None)

    def __enter__(self):
        cdef _Frame top = get_value(self._stack)
        cdef Py_ssize_t depth = 1 if top is None else top.depth + 1
        if depth > self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        sock = self.socket_factory(self.family, self.type, self.proto)
        try:
            sock.connect(self.address)
            frame = _new_frame(sock, top, depth)
            frame.token = PyContextVar_Set(self._stack, frame)
        except BaseException:
            sock.close()
            raise
        return sock

    def __exit__(self, exc_type, exc, tb):
        cdef _Frame top = get_value(self._stack)
        if top is None:
            raise RuntimeError(NO_OPEN_CONNECTION)
        try:
            # The token refuses a reset from any context but the one that pushed it:
            # a task started inside a block sees its creator's sockets but cannot close them.
            PyContextVar_Reset(self._stack, top.token)
        except ValueError:
            raise RuntimeError(FOREIGN_CONNECTION) from None
        top.sock.close()

    @property
    def connections(self):
        """The caller's open sockets, innermost last."""
        socks = []
        cdef _Frame frame = get_value(self._stack)
        while frame is not None:
            socks.append(frame.sock)
            frame = frame.parent
        return tuple(reversed(socks))

    @property
    def sock(self):
        """The caller's innermost open socket, or None."""
        cdef _Frame top = get_value(self._stack)
        return None if top is None else top.sock

    def __repr__(self):
        cdef _Frame top = get_value(self._stack)
        return describe(self, 0 if top is None else top.depth)

    def __reduce__(self):
        return reduce(self)


cdef inline _Frame _new_frame(object sock, _Frame parent, Py_ssize_t depth):
    # __new__ skips the argument parsing of a Python-level constructor call.
    cdef _Frame frame = _Frame.__new__(_Frame)
    frame.sock = sock
    frame.parent = parent
    frame.depth = depth
    return frame
