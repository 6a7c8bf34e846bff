# cython: language_level=3, binding=False, auto_pickle=False, boundscheck=False, wraparound=False
"""The compiled kernel of CLazyConnection: `with` and the per-context stacks, twin of _kernel_py."""

cimport cython
from cpython.contextvars cimport PyContextVar_Set, get_value
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_Next
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.weakref cimport PyWeakref_NewRef

from asyncio import _get_running_loop
from contextvars import ContextVar
import socket
from types import CoroutineType, GeneratorType
from warnings import warn

from ._opening import NO_EVENT_LOOP, connect_async
from ._registry import ALREADY_CONNECTED, NO_OPEN_CONNECTION, stack_elsewhere
from ._settings import DEFAULT_TIMEOUT as _DEFAULT


cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident()


cdef extern from "Python.h":
    # A generator made a coroutine by types.coroutine: awaited as it is.
    int CO_ITERABLE_COROUTINE
    # The current context lives in the thread state; Python code cannot see it without copying.
    ctypedef struct PyThreadState:
        PyObject *context
    PyThreadState *PyThreadState_Get()
    # A dead weak reference points at None, so reading the referent needs no call.
    ctypedef struct PyWeakReference:
        PyObject *wr_object


cdef extern from "_kernel_c.h":
    # list.pop() frees a list's storage when it empties: this pop keeps the capacity.
    object lazyconnection_pop(list stack)
    # factory(*args) with no tuple made: by vectorcall, else the tuple as it is to tp_call.
    object lazyconnection_call_args(object factory, tuple args)
    # list.append, with no call while the capacity lazyconnection_pop kept is there.
    int lazyconnection_append(list stack, object item) except -1
    # Removes an item by identity, from the end, the last item taking its place.
    void lazyconnection_remove(list items, object item)
    # The thread state, read as cheaply as each version allows (never NULL here: the GIL is held).
    PyThreadState *lazyconnection_tstate()
    # A socket's connect and close, called as the interpreter's specialised bytecode does.
    int lazyconnection_connect_or_close(object sock, object address) except -1
    object lazyconnection_sock_close(object sock)
    # An idle socket's checks, in C: poll() with no wait on its descriptor.
    bint lazyconnection_unusable(object sock)
    bint lazyconnection_is_open(object sock)
    int lazyconnection_ensure_timeout_or_close(object sock, object timeout) except -1
    # StopIteration(value) set as the error, as a coroutine's return sets it.
    int lazyconnection_stop_with(object value) except -1
    # A send to a coroutine, as PyIter_Send makes it (1: it yielded, 0: it returned, the
    # value in result, a new reference; -1: its error is set).
    int lazyconnection_send(object coroutine, object value, PyObject **result) except -1
    # The send slot (am_send) that an await's send goes through on 3.10 and 3.11: Cython
    # cannot define it, so it is set on the type once.
    ctypedef int (*lazyconnection_sendfunc)(object, object, PyObject **) except -1
    void lazyconnection_set_send(type cls, lazyconnection_sendfunc send)
    double lazyconnection_now()
    # Reads a socket's descriptor and timeout from its fields once they are found in place.
    int lazyconnection_check_layout(object probe, int family, int type, long long ns) except -1
    bint lazyconnection_layout_checked()


@cython.final
@cython.no_gc  # it refers only to weak references: no cycle, so nothing for the collector
cdef class Caller:
    """One context (thread, task or greenlet): the key of its stack in every connection."""

    cdef object context  # a weak reference to that context
    cdef object parent  # a weak reference to the caller of the context this one was copied from
    cdef readonly unsigned long thread  # where it last entered: a fork's child keeps only its own
    cdef object __weakref__

    def __call__(self):
        """The context, or None once it is gone: keys of both twins answer alike."""
        return self.context()


@cython.final
cdef class Stack(list):
    """A caller's open sockets on one connection, innermost last; it knows its caller, so that
    the stack last looked up is one object, read in one step."""

    cdef Caller caller


cdef class Kernel


@cython.final
@cython.freelist(8)
cdef class Exiting:
    """What __aexit__ returns: a coroutine that never waits, run as _exit when awaited.

    The pure twin's __aexit__ is an `async def`; a Cython one would cost, from 3.12, a wrapper
    and a StopIteration on every await (the interpreter's fast path is for its own coroutines).
    This one is a coroutine as asyncio and collections.abc.Coroutine see it: send, throw, close.
    """

    cdef Kernel kernel  # None once run or closed
    cdef object exc_type

    def __dealloc__(self):
        if self.kernel is not None:
            _never_awaited("__aexit__")

    def __await__(self):
        return self

    def __next__(self):
        _exit(_start(self), self.exc_type)
        raise StopIteration  # with no value: made by no exception object at all

    def send(self, value):
        if value is not None:
            raise TypeError("can't send non-None value to a just-started coroutine")
        _exit(_start(self), self.exc_type)
        raise StopIteration

    def throw(self, error, value=None, traceback=None):
        """Raised in before the exit began, as in a coroutine not yet started: it never runs."""
        self.kernel = None
        raise _thrown(error, value, traceback)

    def close(self):
        self.kernel = None


cdef _never_awaited(str method):
    # As the interpreter warns of a coroutine dropped unawaited: nothing of it has run.
    warn(f"coroutine 'Kernel.{method}' was never awaited", RuntimeWarning)


cdef object _thrown(error, value, traceback):
    """The exception a coroutine's throw(error, value, traceback) raises in it."""
    if isinstance(error, BaseException):
        exception = error
    elif isinstance(value, error):
        exception = value
    elif value is None:
        exception = error()
    else:
        exception = error(*value) if isinstance(value, tuple) else error(value)
    return exception if traceback is None else exception.with_traceback(traceback)


cdef inline Kernel _start(Exiting exiting):
    cdef Kernel kernel = exiting.kernel
    if kernel is None:
        raise RuntimeError("cannot reuse already awaited __aexit__()")
    exiting.kernel = None
    return kernel


@cython.final
@cython.freelist(8)
@cython.no_gc_clear  # its fields stay for __dealloc__, which closes what it was connecting
cdef class Entering:
    """What __aenter__ returns: a coroutine of its own, with no Cython coroutine inside it.

    Awaited, it takes an idle socket, or starts the connect (the loop's sock_connect on a new
    socket, or the shared opening code) and awaits that itself, pushing the socket it gives;
    under max_connections it awaits the Limit's coroutine (_enter_async), which pushes.
    """

    cdef Kernel kernel
    cdef int state  # _NEW, _OPENING (awaiting `opening`) or _DONE
    cdef object opening  # what it awaits once started
    cdef object sock  # the socket `opening` connects (in _connecting), or None
    cdef Stack stack  # where the result goes; None if `opening` pushes it itself

    def __dealloc__(self):
        if self.state == _NEW:
            _never_awaited("__aenter__")
        elif self.state == _OPENING:  # dropped while it connects: closed, as a coroutine is
            _close_entering(self)

    def __await__(self):
        # A second task may not drive the opening the first awaits, as a coroutine refuses it.
        if self.state == _OPENING:
            raise RuntimeError("coroutine is being awaited already")
        return self

    def __next__(self):
        cdef PyObject *result
        if _step(self, None, &result):
            return _steal(result)
        lazyconnection_stop_with(_steal(result))
        raise StopIteration  # leaves with the StopIteration just set: no traceback made

    def send(self, value):
        cdef PyObject *result
        if _step(self, value, &result):
            return _steal(result)
        raise StopIteration(_steal(result))

    def throw(self, error, value=None, traceback=None):
        exception = _thrown(error, value, traceback)
        if self.state != _OPENING:  # raised in before it began, as in a coroutine not started
            self.state = _DONE
            raise exception
        throw = getattr(self.opening, "throw", None)
        if throw is None:  # raised here, as the interpreter's throw does past such an iterator
            _abandon(self)
            raise exception
        try:
            return throw(exception)
        except StopIteration as stop:  # the opening caught it and returned
            raise StopIteration(_finish(self, stop.value))
        except BaseException:
            _abandon(self)
            raise

    def close(self):
        _close_entering(self)


cdef enum:
    _NEW, _OPENING, _DONE


# The sockets Enterings are connecting, in no order. An Entering dropped mid-connect closes
# its socket when freed; as collected garbage (a task on it destroyed, say), the collector
# would first finalize the socket, which warns, if it were not reachable from here. A list:
# a set's add and discard of ever new sockets cost several times more (callgrind).
cdef list _connecting = []


cdef inline object _steal(PyObject *reference):
    """The object of a new reference, taking that reference over."""
    result = <object>reference
    Py_DECREF(result)
    return result


cdef int _step(object entering, object value, PyObject **result) except -1:
    """One step of the enter, as PyIter_Send takes it: 1 with what it yielded, 0 with the
    socket it pushed, -1 with its error (what it opened closed, nothing pushed). Also the
    send slot (am_send) of Entering's type."""
    cdef Entering self = <Entering>entering
    cdef int status
    if self.state != _OPENING:
        sock = _begin(self, value)
        if sock is not None:
            Py_INCREF(sock)
            result[0] = <PyObject*>sock
            return 0
    try:
        status = lazyconnection_send(self.opening, value, result)
    except BaseException:
        _abandon(self)
        raise
    if status == 0:
        sock = _finish(self, _steal(result[0]))
        Py_INCREF(sock)
        result[0] = <PyObject*>sock
    return status


lazyconnection_set_send(Entering, _step)


cdef object _begin(Entering entering, value):
    """An idle socket put on the caller's stack, or None once the opening it awaits is
    started; the refusals (no running loop, TLS) first."""
    if entering.state == _DONE:
        raise RuntimeError("cannot reuse already awaited __aenter__()")
    if value is not None:
        raise TypeError("can't send non-None value to a just-started coroutine")
    entering.state = _DONE  # until there is an opening to await
    cdef Kernel kernel = entering.kernel
    if kernel._max_connections:  # the Limit waits for room, in Python
        entering.opening = _enter_async(kernel)
        entering.state = _OPENING
        return None
    loop = _running_loop(kernel)
    cdef Stack stack = _reserve_stack(kernel)
    if kernel._pool_size:
        sock = _reuse(kernel, stack, False, kernel._idle)
        if sock is not None:
            return sock
    if kernel._open is None:
        sock = lazyconnection_call_args(kernel._factory, kernel._factory_args)
        try:
            sock.setblocking(False)
            timeout = _getdefaulttimeout()
            if timeout is None:
                entering.opening = _awaited(loop.sock_connect(sock, kernel._address))
            else:
                entering.opening = connect_async(loop, sock, kernel._address, timeout)
            lazyconnection_append(_connecting, sock)
        except BaseException:
            sock.close()
            raise
        entering.sock = sock
    else:
        entering.opening = kernel._open_async()  # connected, or closed before its error left
    entering.stack = stack
    entering.state = _OPENING
    return None


cdef object _awaited(awaitable):
    """What an await of it drives, as the interpreter's await finds it: a coroutine, or a
    generator-based one, itself; anything else its __await__()."""
    cdef type kind = type(awaitable)
    if kind is _CoroutineType:
        return awaitable
    if kind is _GeneratorType and awaitable.gi_code.co_flags & CO_ITERABLE_COROUTINE:
        return awaitable
    try:
        method = kind.__await__
    except AttributeError:
        raise TypeError(f"object {kind.__name__} can't be used in 'await' expression") from None
    return method(awaitable)


cdef object _finish(Entering entering, opened):
    """The opening returned: push what it connected (unless it pushed it itself)."""
    entering.state = _DONE
    entering.opening = None
    cdef Stack stack = entering.stack
    if stack is None:
        return opened
    sock = entering.sock
    if sock is None:
        sock = opened
    else:
        entering.sock = None
        lazyconnection_remove(_connecting, sock)
    entering.stack = None
    return _push(entering.kernel, stack, sock)


cdef _close_entering(Entering entering):
    if entering.state == _OPENING:
        try:
            close = getattr(entering.opening, "close", None)  # none: left, as by await
            if close is not None:
                close()
        finally:
            _abandon(entering)
    entering.state = _DONE


cdef _abandon(Entering entering):
    """The opening failed, was cancelled or closed: nothing is pushed, the socket closed."""
    entering.state = _DONE
    entering.opening = None
    entering.stack = None
    sock = entering.sock
    entering.sock = None
    if sock is not None:
        lazyconnection_remove(_connecting, sock)
        sock.close()


cdef object _running_loop(Kernel self):
    """The running asyncio loop, once `async with`'s refusals are passed, in their order."""
    loop = _get_running_loop()
    if loop is None:
        raise RuntimeError(NO_EVENT_LOOP)
    if self._async_refusal is not None:
        raise NotImplementedError(self._async_refusal)
    return loop


# The time of connect of every socket of a pool without max_lifetime: never read.
cdef object _UNTIMED = 0.0
# Called on every reuse of a socket in a blocking `with` without a timeout option.
cdef object _getdefaulttimeout = socket.getdefaulttimeout
# What the loop's sock_connect returns, awaited as it is (anything else through __await__).
cdef object _CoroutineType = CoroutineType
cdef object _GeneratorType = GeneratorType
# The timeout option's default, read as a C variable: a module global is a dict lookup.
cdef object DEFAULT_TIMEOUT = _DEFAULT


cdef _check_socket_layout():
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:  # refused here (a sandbox, say): the fields stay unread, fileno() is called
        return
    try:
        probe.settimeout(1.5)
        lazyconnection_check_layout(probe, socket.AF_INET, socket.SOCK_DGRAM, 1_500_000_000)
    finally:
        probe.close()


_check_socket_layout()
# Whether a socket's descriptor and timeout are read from its fields (tested on CPython).
SOCKET_FIELDS_READ = lazyconnection_layout_checked()

# A context copied into a new task or thread carries its creator's caller with it.
cdef object _callers = ContextVar("lazyconnection", default=None)


cdef inline bint _is_current(Caller caller) noexcept:
    """Whether the caller is the current context's own: its weak reference points there."""
    cdef PyObject *context = lazyconnection_tstate().context
    return (<PyWeakReference*><PyObject*>caller.context).wr_object == context


cdef inline Caller _own_caller():
    """This context's caller, or None: one inherited from the context it was copied from is not."""
    cdef Caller caller = <Caller>get_value(_callers)
    if caller is not None and _is_current(caller):
        return caller
    return None


cdef Caller _new_caller(inherited):
    cdef Caller caller = Caller.__new__(Caller)
    caller.parent = None if inherited is None else PyWeakref_NewRef(inherited, None)
    caller.thread = PyThread_get_thread_ident()
    PyContextVar_Set(_callers, caller)  # makes the thread's context if it had none
    caller.context = PyWeakref_NewRef(<object>PyThreadState_Get().context, None)
    return caller


cdef object _parent():
    """The caller of the context this one was copied from, or None."""
    cdef Caller own = _own_caller()
    if own is None:
        return get_value(_callers)  # inherited, not this context's own
    return None if own.parent is None else own.parent()


cdef inline object _push(Kernel self, Stack stack, object sock):
    # Opening may have run code that entered this object too (an on_connect hook).
    if len(stack) >= self._depth_limit:
        sock.close()
        raise RuntimeError(ALREADY_CONNECTED)
    self._opened += 1
    cdef double born = lazyconnection_now() if self._lent is not None else 0.0
    lazyconnection_append(stack, sock)  # the last steps, with no call: see _reuse
    if self._lent is not None:
        self._lent[sock] = born
    return sock


cdef class Kernel:
    """Opens on `with` and closes on exit; each caller keeps its own stack of open sockets.

    The public class around it, written once in Python, configures it with _set_kernel.
    """

    cdef object _address
    cdef tuple _factory_args  # (family, type, proto): made once, not on every call
    cdef object _factory
    cdef object _open  # None: a plain factory() and connect(); else it opens a connected socket
    cdef Py_ssize_t _depth_limit
    # caller -> its open sockets, innermost last; emptied, not removed; read by a fork's child
    cdef readonly dict _stacks
    cdef Py_ssize_t _sweep_at
    cdef Stack _last  # the stack last looked up: one thread or task needs no dict lookup
    cdef Py_ssize_t _opened, _reused, _discarded
    # Reuse, set by _set_pool when pool_size > 0.
    cdef Py_ssize_t _pool_size
    cdef list _idle  # the idle sockets, newest last; as (socket, connected at, idle since) if timed
    cdef dict _lent  # with max_lifetime: socket handed out -> connected at; else None
    cdef set _inherited  # in a forked child: the sockets in use at the fork, never kept
    cdef double _idle_timeout  # 0.0: none, as for _max_lifetime
    cdef double _max_lifetime
    cdef bint _timed  # either is set
    cdef object _timeout  # what a reused socket's gettimeout() must say in a blocking `with`
    cdef object _tls_usable  # for TLS sockets, a check beyond poll()
    # max_connections, set by _set_limit; 0: no limit.
    cdef Py_ssize_t _max_connections
    # Sockets open or being opened (in use, idle, or granted to a waiter). Read and changed
    # only in C, with no Python code between a test and its change: the GIL makes each
    # _take_room and _give_room one step. A free-threaded build would need atomic operations
    # on it (a compare-and-swap in _take_room, a decrement in _give_room).
    cdef Py_ssize_t _open_count
    cdef object _waiters  # the Limit's queue: a new caller queues behind it
    cdef object _limit  # the Limit: the waiting, in _limit.py
    # `async with`, set by _set_async: opening beyond a plain connect.
    cdef object _open_async
    cdef object _async_refusal  # why `async with` is refused (TLS), or None
    cdef object __weakref__

    def __cinit__(self):
        self._stacks = {}
        self._sweep_at = 8

    def _set_kernel(self, address, family, type, proto, factory, open, Py_ssize_t depth_limit):
        self._address = address
        self._factory_args = (family, type, proto)
        self._factory = factory
        self._open = open
        self._depth_limit = depth_limit

    @staticmethod
    def _caller_thread(key):
        """The thread a key's caller last entered in, or None once that context is gone."""
        return None if key() is None else (<Caller>key).thread

    def _set_pool(self, list idle, dict lent, set inherited, Py_ssize_t pool_size,
                  double idle_timeout, double max_lifetime, timeout, tls_usable):
        """Keep idle sockets."""
        self._idle = idle
        self._lent = lent
        self._inherited = inherited
        self._pool_size = pool_size
        self._idle_timeout = idle_timeout
        self._max_lifetime = max_lifetime
        self._timed = idle_timeout or max_lifetime
        self._timeout = timeout
        self._tls_usable = tls_usable

    def _set_limit(self, limit, waiters, Py_ssize_t max_connections):
        """Open at most max_connections sockets at once; the Limit does the waiting."""
        self._limit = limit
        self._waiters = waiters
        self._max_connections = max_connections
        self._open_count = 0

    def _set_async(self, open_async, async_refusal):
        """How `async with` opens a socket beyond a plain connect, and why it is refused
        (None: it is not)."""
        self._open_async = open_async
        self._async_refusal = async_refusal

    def __enter__(self):
        cdef Stack stack = _reserve_stack(self)
        if self._max_connections:
            return _enter_limited(self, stack)
        if self._pool_size:
            sock = _reuse(self, stack, True, self._idle)
            if sock is not None:
                return sock
        return _push(self, stack, _open_blocking(self))

    def __exit__(self, exc_type, exc, tb, /):
        _exit(self, exc_type)

    @cython.binding(True)  # a function object, which _mark_coroutine_functions can mark
    def __aenter__(self):
        cdef Entering entering = Entering.__new__(Entering)
        entering.kernel = self
        return entering

    async def _enter_async(self):
        """`async with` under max_connections, which Entering awaits: the Limit waits for
        room, then reuses or opens, and pushes."""
        _running_loop(self)
        cdef Stack stack = _reserve_stack(self)
        depth = len(stack)
        try:
            return await self._limit.enter_async(stack, self._open_async)
        except BaseException as error:  # pushed, then interrupted before the block began
            if len(stack) > depth:  # the Limit's Python code ran after the push
                _exit(self, type(error))
            raise

    @cython.binding(True)
    def __aexit__(self, exc_type, exc, tb, /):  # as __exit__: positional, in both twins
        cdef Exiting exiting = Exiting.__new__(Exiting)
        exiting.kernel = self
        exiting.exc_type = exc_type
        return exiting

    def _reuse(self, Stack stack not None):
        """Put an idle socket, made ready for `async with`, on the caller's stack (for
        the Limit's `async with`); return it, or None if none is usable."""
        return _reuse(self, stack, False, self._idle)

    def _push(self, Stack stack not None, sock):
        """Put a newly opened socket on the caller's stack (for the Limit)."""
        return _push(self, stack, sock)

    def _take_room(self):
        """Reserve room for one more open socket, if the limit allows."""
        return _take_room(self)

    def _give_room(self):
        """Undo _take_room (the Limit calls this holding its mutex)."""
        self._open_count -= 1

    def _release(self):
        """A socket closed, or never opened: its room to the first waiter, or free."""
        _release(self)

    def _open_reserved(self, Stack stack not None):
        """Open a socket in a room taken for it; a failure gives the room back."""
        return _open_reserved(self, stack)

    def _reuse_granted(self, Stack stack not None, entry, bint blocking):
        """Put an idle socket granted to a waiter on its stack; None if it was unusable (then
        closed, its room released)."""
        return _reuse(self, stack, blocking, [entry])

    def _after_fork(self, Py_ssize_t counted):
        """In a forked child: only `counted` sockets still hold room."""
        self._open_count = min(counted, self._max_connections)

    def _in_use(self):
        """Sockets held by callers now, for stats()."""
        return sum([len(stack) for stack in list(self._stacks.values())])

    def _counts(self):
        """(opened, reused, discarded), for stats()."""
        return self._opened, self._reused, self._discarded

    def _stack(self):
        """The caller's stack, or None: read, never changed, by the public class."""
        return _own_stack(self, False)


# Kernel._enter_async as it is, called with the kernel: no bound method made on each call.
cdef object _enter_async = Kernel._enter_async


def _mark_coroutine_functions():
    """inspect.iscoroutinefunction(__aenter__ and __aexit__) is True, as for the pure twin's
    `async def`s, where inspect reads a mark (3.12+): unittest's enterAsyncContext awaits
    only what it says. Before 3.12 it reads only code flags, which these cannot have."""
    import inspect
    if hasattr(inspect, "markcoroutinefunction"):
        inspect.markcoroutinefunction(Kernel.__aenter__)
        inspect.markcoroutinefunction(Kernel.__aexit__)


_mark_coroutine_functions()


# Functions rather than methods of Kernel, so that the C compiler can inline them.
cdef inline _exit(Kernel self, exc_type):
    cdef Stack stack = _own_stack(self, False)
    if not stack:
        stack, chosen = stack_elsewhere(self._stacks, _parent(), exc_type)
        if not stack or stack[len(stack) - 1] is not chosen:  # its owner moved on meanwhile
            raise RuntimeError(NO_OPEN_CONNECTION)
    born = _unlend(self, stack) if self._pool_size else None
    sock = lazyconnection_pop(stack)
    if self._max_connections:
        _return_limited(self, sock, born, exc_type)
    elif born is None or not _kept(self, sock, born, exc_type):
        lazyconnection_sock_close(sock)


cdef inline Stack _own_stack(Kernel self, bint create):
    # The context's own caller is known without the context variable when it is the last
    # (the pure twin has no such shortcut: it asks the variable every time).
    # Borrowed, with no count of its own on the fast path: nothing runs before it is used.
    cdef PyObject *last = <PyObject*>self._last
    if last is not <PyObject*>None and _is_current((<Stack>last).caller):
        return <Stack>last
    cdef Stack stack
    cdef Caller caller = <Caller>get_value(_callers)
    cdef PyObject *found = NULL
    if caller is not None and _is_current(caller):
        found = PyDict_GetItem(self._stacks, caller)
    elif create:  # the context's first `with` of any connection: it has no stack anywhere
        caller = _new_caller(caller)
    else:
        return None
    if found is not NULL:
        stack = <Stack>found
    elif not create:
        return None
    else:
        if len(self._stacks) >= self._sweep_at:
            self._sweep_at = _sweep(self._stacks)
        stack = Stack.__new__(Stack)
        stack.caller = caller
        self._stacks[caller] = stack
    self._last = stack
    return stack


cdef Py_ssize_t _sweep(dict stacks) except -1:
    """Drop the empty stacks of callers that are gone; return the size for the next sweep.

    _registry.sweep, the pure twin's, in C: a context's first `with` pays for it in turn.
    Stacks are kept when emptied, so that a context's next `with` finds its own again; a
    context that ends leaves one behind, collected here, when the dict has doubled.
    """
    cdef PyObject *key
    cdef PyObject *stack
    cdef Py_ssize_t position = 0
    gone = []
    while PyDict_Next(stacks, &position, &key, &stack):
        context = (<Caller>key).context
        if not <list>stack and (<PyWeakReference*><PyObject*>context).wr_object == <PyObject*>None:
            gone.append(<object>key)
    for caller in gone:
        del stacks[caller]
    return max(8, 2 * len(stacks))


cdef inline Stack _reserve_stack(Kernel self):
    cdef Stack stack = _own_stack(self, True)
    # The thread entering, for a fork's child: a context may run in several threads in turn.
    self._last.caller.thread = PyThread_get_thread_ident()
    if len(stack) >= self._depth_limit:
        raise RuntimeError(ALREADY_CONNECTED)
    return stack


cdef inline bint _take_room(Kernel self):
    # One step under the GIL (see _open_count).
    if self._open_count < self._max_connections:
        self._open_count += 1
        return True
    return False


cdef inline _release(Kernel self):
    self._open_count -= 1
    if self._waiters:
        self._limit.dispatch()


cdef object _enter_limited(Kernel self, Stack stack):
    """`with` under max_connections: at once while nobody waits and there is room."""
    if not self._waiters:
        if self._pool_size:
            sock = _reuse(self, stack, True, self._idle)
            if sock is not None:
                return sock
        if _take_room(self):
            return _open_reserved(self, stack)
    return self._limit.enter_blocking(stack)


cdef inline object _open_blocking(Kernel self):
    """A connected socket for a blocking `with`, closed before an error leaves."""
    if self._open is not None:
        return self._open()
    sock = lazyconnection_call_args(self._factory, self._factory_args)
    lazyconnection_connect_or_close(sock, self._address)
    return sock


cdef object _open_reserved(Kernel self, Stack stack):
    try:
        return _push(self, stack, _open_blocking(self))
    except BaseException:
        _release(self)
        raise


cdef _return_limited(Kernel self, sock, born, exc_type):
    """Keep or close the socket an exit took; a closed one's room goes to a waiter."""
    cdef bint kept = False
    try:
        kept = born is not None and _kept(self, sock, born, exc_type)
        if not kept:
            lazyconnection_sock_close(sock)
    finally:
        if not kept:
            _release(self)
        elif self._waiters:  # the socket kept idle goes to the first waiter
            self._limit.dispatch()


cdef _close_discarded(Kernel self, sock):
    try:
        lazyconnection_sock_close(sock)
    finally:
        if self._max_connections:
            _release(self)


cdef object _reuse(Kernel self, Stack stack, bint blocking, list idle):
    """Put the newest usable idle socket on the stack and return it; None if there is none.

    Older, dead and readable ones met on the way are closed. `idle`: the pool's, or one
    socket granted to a waiter.
    """
    cdef double now = lazyconnection_now() if self._timed else 0.0
    cdef double born = 0.0
    cdef bint expired = False
    while idle:
        sock = lazyconnection_pop(idle)
        if self._timed:
            entry = <tuple>sock
            sock, born = entry[0], entry[1]
            expired = _expired(self, born, entry[2], now)
        if expired or not _usable(self, sock):
            self._discarded += 1
            _close_discarded(self, sock)
            continue
        # As if newly opened for this mode: blocking with the configured timeout, or not.
        timeout = self._timeout if blocking else 0.0
        if timeout is DEFAULT_TIMEOUT:
            timeout = _getdefaulttimeout()
        if self._max_connections:
            try:
                lazyconnection_ensure_timeout_or_close(sock, timeout)
            except BaseException:  # closed: its room is free
                _release(self)
                raise
        else:
            lazyconnection_ensure_timeout_or_close(sock, timeout)
        self._reused += 1
        # No call from the push to the end of the enter, so that in the pure twin no signal
        # handler runs in between; here none can run at all.
        lazyconnection_append(stack, sock)
        if self._lent is not None:
            self._lent[sock] = born
        return sock
    return None


cdef inline bint _expired(Kernel self, double born, double since, double now):
    return (self._idle_timeout and now - since >= self._idle_timeout) or (
        self._max_lifetime and now - born >= self._max_lifetime
    )


cdef inline bint _usable(Kernel self, sock) except -1:
    cdef bint unusable = lazyconnection_unusable(sock)
    if self._tls_usable is None:
        return not unusable
    try:
        return _tls_usable(self, sock, unusable)
    except BaseException:  # closed: its room is free
        if self._max_connections:
            _release(self)
        raise


cdef bint _tls_usable(Kernel self, sock, bint unusable) except -1:
    try:  # Python code, which an interrupt may stop: the socket is on no stack
        return self._tls_usable(sock, unusable)
    except BaseException:
        lazyconnection_sock_close(sock)
        raise


cdef inline object _unlend(Kernel self, Stack stack):
    """The innermost socket's time of connect if it may be kept (0.0 when untimed), or None.

    Taken while the socket is still on its stack: one in neither place would stay lent.
    """
    sock = stack[len(stack) - 1]
    if self._inherited and sock in self._inherited:
        self._inherited.discard(sock)
        return None
    if self._lent is None:
        return _UNTIMED
    cdef PyObject *found = PyDict_GetItem(self._lent, sock)
    if found is NULL:  # not lent since a fork
        return None
    born = <object>found
    PyDict_DelItem(self._lent, sock)
    return born


cdef bint _kept(Kernel self, sock, double born, exc_type) except -1:
    """Whether the socket went back to the idle pool; if not, the caller closes it."""
    if exc_type is not None or not lazyconnection_is_open(sock):  # raised, closed it, or a file
        return False
    if self._tls_usable is not None and not _tls_usable(self, sock, False):  # TLS ended, say
        return False
    cdef double now = lazyconnection_now() if self._timed else 0.0
    if self._max_lifetime and now - born >= self._max_lifetime:
        self._discarded += 1
        return False
    if len(self._idle) >= self._pool_size:
        return False
    self._idle.append((sock, born, now) if self._timed else sock)
    return True
