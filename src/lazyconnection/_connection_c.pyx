# cython: language_level=3
"""The compiled LazyConnection: the twin of _connection_py.py, with the `with` path in C."""

cimport cython
from cpython.contextvars cimport PyContextVar_Set, get_value
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from cpython.weakref cimport PyWeakref_GetRef, PyWeakref_NewRef

from contextvars import ContextVar
from socket import AF_INET, SOCK_STREAM

from ._config import (
    ALREADY_CONNECTED,
    NO_OPEN_CONNECTION,
    check_arguments,
    depth_limit,
    describe,
    options_of,
    reduce,
)
from ._opening import DEFAULT_TIMEOUT, decorate, open_plain_async


cdef extern from "Python.h":
    # The current context lives in the thread state; Python code cannot see it without copying.
    ctypedef struct PyThreadState:
        PyObject *context
    PyThreadState *PyThreadState_Get()


@cython.final
cdef class _Registry:
    """The open sockets of one context (thread, task or greenlet), per connection."""

    cdef dict stacks
    cdef object owner  # a weak reference to the context this registry belongs to


# A context copied into a new task or thread carries its creator's registry with it.
cdef object _registries = ContextVar("lazyconnection", default=None)


cdef _Registry _own_registry(bint create):
    """This context's registry; one inherited from the context it was copied from is not."""
    cdef _Registry registry = get_value(_registries)
    cdef PyObject *referent = NULL
    if registry is not None:
        PyWeakref_GetRef(registry.owner, &referent)
        Py_XDECREF(referent)
        if referent == PyThreadState_Get().context:
            return registry
    if not create:
        return None
    registry = _Registry.__new__(_Registry)
    registry.stacks = {}
    PyContextVar_Set(_registries, registry)  # makes the thread's context if it had none
    registry.owner = PyWeakref_NewRef(<object>PyThreadState_Get().context, None)
    return registry


cdef list _own_stack(object key):
    """One connection's stack in this context, or None."""
    cdef _Registry registry = _own_registry(False)
    return None if registry is None else registry.stacks.get(key)


cdef inline _push(dict stacks, object key, list stack, object sock):
    """Put sock on the caller's stack for this connection, making the stack if need be."""
    if stack is None:
        stacks[key] = [sock]
    else:
        stack.append(sock)


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
    cdef object _opener
    cdef Py_ssize_t _depth_limit
    cdef object _key
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
        timeout=DEFAULT_TIMEOUT,
        source_address=None,
        socket_options=(),
        all_errors=False,
        ssl_context=None,
        server_hostname=None,
        on_connect=None,
        retries=0,
        backoff=0.1,
    ):
        (
            self.address,
            self.family,
            self.type,
            self.proto,
            self.max_depth,
            self.socket_factory,
            self._opener,
        ) = check_arguments(
            address,
            family,
            type,
            proto,
            max_depth,
            socket_factory,
            timeout=timeout,
            source_address=source_address,
            socket_options=socket_options,
            all_errors=all_errors,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            on_connect=on_connect,
            retries=retries,
            backoff=backoff,
        )
        self._depth_limit = depth_limit(self.max_depth)
        # Unique for ever, unlike id(self), and hashable whatever a subclass does to __eq__.
        self._key = object()

    def __enter__(self):
        cdef dict stacks = _own_registry(True).stacks
        cdef list stack = stacks.get(self._key)
        if stack is not None and len(stack) >= self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        opener = self._opener  # None when no option is set: the fast path
        if opener is None:
            sock = self.socket_factory(self.family, self.type, self.proto)
        else:
            sock = opener.open()  # connected, or closed before its error left
        try:
            if opener is None:
                sock.connect(self.address)
            _push(stacks, self._key, stack, sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def __exit__(self, exc_type, exc, tb):
        cdef _Registry registry = _own_registry(False)
        cdef list stack = None if registry is None else registry.stacks.get(self._key)
        if not stack:
            raise RuntimeError(NO_OPEN_CONNECTION)
        sock = stack.pop()
        if not stack:
            del registry.stacks[self._key]
        sock.close()

    async def __aenter__(self):
        cdef dict stacks = _own_registry(True).stacks
        cdef list stack = stacks.get(self._key)
        if stack is not None and len(stack) >= self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        if self._opener is None:
            sock = await open_plain_async(
                self.socket_factory, self.family, self.type, self.proto, self.address
            )
        else:
            sock = await self._opener.open_async()  # connected, or closed before its error left
        try:
            _push(stacks, self._key, stack, sock)
        except BaseException:
            sock.close()
            raise
        return sock

    async def __aexit__(self, exc_type, exc, tb):
        LazyConnection.__exit__(self, exc_type, exc, tb)

    def __call__(self, func):
        """Use as a decorator: each call runs inside a connection of its own."""
        return decorate(self, func)

    @property
    def connections(self):
        """The caller's open sockets, innermost last."""
        stack = _own_stack(self._key)
        return () if stack is None else tuple(stack)

    @property
    def sock(self):
        """The caller's innermost open socket, or None."""
        stack = _own_stack(self._key)
        return None if not stack else stack[-1]

    @property
    def options(self):
        """The connection options, defaults included (a copy)."""
        return options_of(self._opener)

    def __repr__(self):
        stack = _own_stack(self._key)
        return describe(self, 0 if stack is None else len(stack))

    def __reduce__(self):
        return reduce(self)
