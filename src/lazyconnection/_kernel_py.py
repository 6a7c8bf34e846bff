"""The pure-Python kernel of PyLazyConnection: the twin of _kernel_c.pyx, line for line."""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
import weakref
from asyncio import _get_running_loop
from contextvars import Context, ContextVar, Token
from threading import get_ident
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple, Type

from ._opening import NO_EVENT_LOOP, connect_async
from ._pool import is_open, unusable
from ._registry import ALREADY_CONNECTED, NO_OPEN_CONNECTION, stack_elsewhere, sweep
from ._settings import DEFAULT_TIMEOUT


class Caller:
    """One context (thread, task or greenlet): its weak reference keys its stack everywhere."""

    __slots__ = ("key", "context", "parent", "thread", "__weakref__")

    def __init__(self, inherited: Optional[Caller], context: Context) -> None:
        self.key = weakref.ref(self)  # dead once no context holds this caller
        self.context = weakref.ref(context)
        # The key of the caller of the context this one was copied from, or None.
        self.parent = None if inherited is None else inherited.key
        self.thread = get_ident()  # where it last entered: a fork's child keeps only its own


class Stack(list):  # type: ignore[type-arg]
    """A caller's open sockets on one connection, innermost last; it knows its caller's key, so
    that the stack last looked up is one object, read in one step."""

    __slots__ = ("key",)
    key: Any  # its caller's


# A context copied into a new task or thread carries its creator's caller with it.
_callers: ContextVar[Optional[Caller]] = ContextVar("lazyconnection", default=None)


def _context_of(token: Token[Any]) -> Context:
    """The context a token was made in: the current one, which Python code cannot otherwise
    see (copy_context() makes a copy). The collector's view of a token lists its context
    first, then its variable and old value. Nothing keeps the token, so nothing of the
    library's refers to a context: each is freed when it ends."""
    context = gc.get_referents(token)[0]
    if type(context) is not Context:  # pragma: no cover  (listed in another order)
        context = next(each for each in gc.get_referents(token) if type(each) is Context)
    return context


if hasattr(sys, "pypy_version_info"):  # where the collector is slow to ask, PyPy tells it
    from __pypy__ import get_contextvar_context  # type: ignore[import-not-found]

    def _context_of(token: Token[Any]) -> Context:
        return get_contextvar_context()  # type: ignore[no-any-return]


def _own_caller() -> Optional[Caller]:
    """This context's caller, or None: one inherited from the context it was copied from is not."""
    caller = _callers.get()
    # Its own if its weak reference points to the current context (setting the variable to
    # the value it holds changes nothing, but its token tells which context this is).
    if caller is not None and caller.context() is _context_of(_callers.set(caller)):
        return caller
    return None


def _new_caller() -> Caller:
    inherited = _callers.get()
    # Made whole before the variable holds it: an interrupt leaves no caller half made.
    caller = Caller(inherited, _context_of(_callers.set(inherited)))
    _callers.set(caller)
    return caller


def _parent() -> Any:
    """The key of the caller of the context this one was copied from, or None."""
    own = _own_caller()
    if own is None:
        inherited = _callers.get()  # not this context's own
        return None if inherited is None else inherited.key
    return own.parent


class Kernel:
    """Opens on `with` and closes on exit; each caller keeps its own stack of open sockets.

    The public class around it, written once in Python, configures it with _set_kernel.
    """

    __slots__ = (
        "_address",
        "_family",
        "_type",
        "_proto",
        "_factory",
        "_open",
        "_depth_limit",
        "_stacks",
        "_sweep_at",
        "_last",
        "_opened",
        "_reused",
        "_discarded",
        "_pool_size",
        "_idle",
        "_lent",
        "_inherited",
        "_idle_timeout",
        "_max_lifetime",
        "_timed",
        "_timeout",
        "_tls_usable",
        "_max_connections",
        "_open_count",
        "_counting",
        "_waiters",
        "_limit",
        "_open_async",
        "_async_refusal",
        "__weakref__",
    )

    def __init__(self) -> None:
        self._stacks: Dict[Any, Stack] = {}
        self._sweep_at = 8
        # The stack last looked up: one thread or task needs no dict lookup. Its key, being
        # weak, keeps no finished context alive.
        self._last: Optional[Stack] = None
        self._opened = self._reused = self._discarded = 0
        # Reuse, set by _set_pool when pool_size > 0.
        self._pool_size = 0
        # the idle sockets, newest last; as (socket, connected at, idle since) if timed
        self._idle: List[Any] = None  # type: ignore[assignment]
        # with max_lifetime: socket handed out -> connected at; else None
        self._lent: Optional[Dict[Any, float]] = None
        # in a forked child: the sockets in use at the fork, never kept
        self._inherited: Set[Any] = None  # type: ignore[assignment]
        self._idle_timeout = self._max_lifetime = 0.0  # 0.0: none
        self._timed = False  # either is set
        self._timeout: Any = DEFAULT_TIMEOUT
        self._tls_usable: Optional[Callable[[Any, bool], bool]] = None
        # max_connections, set by _set_limit; 0: no limit.
        self._max_connections = 0
        # Sockets open or being opened (in use, idle, or granted to a waiter). The compiled
        # twin tests and changes it in C, one step under the GIL; here a lock makes the test
        # and the change one step (with or without a GIL).
        self._open_count = 0
        self._counting = threading.Lock()
        self._waiters: Any = ()  # the Limit's queue: a new caller queues behind it
        self._limit: Any = None  # the Limit: the waiting, in _limit.py
        # `async with`, set by _set_async: opening beyond a plain connect.
        self._open_async: Callable[[], Awaitable[Any]] = None  # type: ignore[assignment]
        self._async_refusal: Optional[str] = None  # why `async with` is refused (TLS), or None

    def _set_kernel(
        self,
        address: Any,
        family: int,
        type: int,
        proto: int,
        factory: Callable[..., Any],
        open: Optional[Callable[[], Any]],
        depth_limit: int,
    ) -> None:
        self._address = address
        self._family = family
        self._type = type
        self._proto = proto
        self._factory = factory
        self._open = open
        self._depth_limit = depth_limit

    @staticmethod
    def _caller_thread(key: Any) -> Optional[int]:
        """The thread a key's caller last entered in, or None once that context is gone."""
        caller = key()
        return None if caller is None else caller.thread

    def _set_pool(
        self,
        idle: List[Any],
        lent: Optional[Dict[Any, float]],
        inherited: Set[Any],
        pool_size: int,
        idle_timeout: float,
        max_lifetime: float,
        timeout: Any,
        tls_usable: Optional[Callable[[Any, bool], bool]],
    ) -> None:
        """Keep idle sockets."""
        self._idle = idle
        self._lent = lent
        self._inherited = inherited
        self._pool_size = pool_size
        self._idle_timeout = idle_timeout
        self._max_lifetime = max_lifetime
        self._timed = bool(idle_timeout or max_lifetime)
        self._timeout = timeout
        self._tls_usable = tls_usable

    def _set_limit(self, limit: Any, waiters: Any, max_connections: int) -> None:
        """Open at most max_connections sockets at once; the Limit does the waiting."""
        self._limit = limit
        self._waiters = waiters
        self._max_connections = max_connections
        self._open_count = 0

    def _set_async(
        self, open_async: Callable[[], Awaitable[Any]], async_refusal: Optional[str]
    ) -> None:
        """How `async with` opens a socket beyond a plain connect, and why it is refused
        (None: it is not)."""
        self._open_async = open_async
        self._async_refusal = async_refusal

    def _own_stack(self, create: bool) -> Optional[List[Any]]:
        caller = _own_caller()
        if caller is None:
            if not create:
                return None
            caller = _new_caller()
        last = self._last
        if last is not None and last.key is caller.key:
            return last
        found = self._stacks.get(caller.key)
        if found is not None:
            stack = found
        elif not create:
            return None
        else:
            if len(self._stacks) >= self._sweep_at:
                self._sweep_at = sweep(self._stacks)
            stack = Stack()
            stack.key = caller.key
            self._stacks[caller.key] = stack
        self._last = stack
        return stack

    def _reserve_stack(self) -> List[Any]:
        stack: List[Any] = self._own_stack(True)  # type: ignore[assignment]
        # The thread entering, for a fork's child: a context may run in several threads in turn.
        _callers.get().thread = get_ident()  # type: ignore[union-attr]
        if len(stack) >= self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        return stack

    def __enter__(self) -> socket.socket:
        stack = self._reserve_stack()
        if self._max_connections:
            return self._enter_limited(stack)  # type: ignore[no-any-return]
        if self._pool_size:
            sock = self._reuse_for(stack, True)
            if sock is not None:
                return sock  # type: ignore[no-any-return]
        return self._push(stack, self._open_blocking())  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        stack = self._own_stack(False)
        if not stack:
            stack, chosen = stack_elsewhere(self._stacks, _parent(), exc_type)
            if not stack or stack[-1] is not chosen:  # its owner moved on meanwhile
                raise RuntimeError(NO_OPEN_CONNECTION)
        born = self._unlend(stack) if self._pool_size else None
        sock = stack.pop()
        if self._max_connections:
            self._return_limited(sock, born, exc_type)
        elif born is None or not self._kept(sock, born, exc_type):
            sock.close()

    async def _enter_async(self) -> socket.socket:
        """`async with`. The compiled kernel's Entering takes the same steps as a coroutine
        object of its own, awaiting the connect itself."""
        loop = _get_running_loop()
        if loop is None:
            raise RuntimeError(NO_EVENT_LOOP)
        if self._async_refusal is not None:
            raise NotImplementedError(self._async_refusal)
        stack = self._reserve_stack()
        if self._max_connections:
            depth = len(stack)
            try:
                return await self._limit.enter_async(stack, self._open_async)  # type: ignore[no-any-return]
            except BaseException as error:  # pushed, then interrupted before the block began
                if len(stack) > depth:  # the Limit's Python code ran after the push
                    self.__exit__(type(error), error, error.__traceback__)
                raise
        if self._pool_size:
            sock = self._reuse_for(stack, False)
            if sock is not None:
                return sock  # type: ignore[no-any-return]
        if self._open is None:
            sock = self._factory(self._family, self._type, self._proto)
            try:  # a cancellation too: nothing is left open
                sock.setblocking(False)
                timeout = socket.getdefaulttimeout()
                if timeout is None:
                    await loop.sock_connect(sock, self._address)
                else:
                    await connect_async(loop, sock, self._address, timeout)
            except BaseException:
                sock.close()
                raise
        else:
            sock = await self._open_async()  # connected, or closed before its error left
        return self._push(stack, sock)  # type: ignore[no-any-return]

    # The whole enter, an `async def` as inspect and unittest expect.
    __aenter__ = _enter_async

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _reuse(self, stack: List[Any]) -> Any:
        """Put an idle socket, made ready for `async with`, on the caller's stack (for
        the Limit's `async with`); return it, or None if none is usable."""
        return self._reuse_for(stack, False)

    def _push(self, stack: List[Any], sock: Any) -> Any:
        """Put a newly opened socket on the caller's stack (for the Limit)."""
        # Opening may have run code that entered this object too (an on_connect hook).
        if len(stack) >= self._depth_limit:
            sock.close()
            raise RuntimeError(ALREADY_CONNECTED)
        self._opened += 1
        born = time.monotonic() if self._lent is not None else 0.0
        stack += (sock,)  # the last call-free steps: see _reuse_for
        if self._lent is not None:
            self._lent[sock] = born
        return sock

    def _enter_limited(self, stack: List[Any]) -> Any:
        """`with` under max_connections: at once while nobody waits and there is room."""
        if not self._waiters:
            if self._pool_size:
                sock = self._reuse_for(stack, True)
                if sock is not None:
                    return sock
            if self._take_room():
                return self._open_reserved(stack)
        return self._limit.enter_blocking(stack)

    def _open_blocking(self) -> Any:
        """A connected socket for a blocking `with`, closed before an error leaves."""
        if self._open is not None:
            return self._open()
        sock = self._factory(self._family, self._type, self._proto)
        try:
            sock.connect(self._address)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_reserved(self, stack: List[Any]) -> Any:
        """Open a socket in a room taken for it; a failure gives the room back."""
        try:
            return self._push(stack, self._open_blocking())
        except BaseException:
            self._release()
            raise

    def _return_limited(
        self, sock: Any, born: Optional[float], exc_type: Optional[Type[BaseException]]
    ) -> None:
        """Keep or close the socket an exit took; a closed one's room goes to a waiter."""
        kept = False
        try:
            kept = born is not None and self._kept(sock, born, exc_type)
            if not kept:
                sock.close()
        finally:
            if not kept:
                self._release()
            elif self._waiters:  # the socket kept idle goes to the first waiter
                self._limit.dispatch()

    def _take_room(self) -> bool:
        """Reserve room for one more open socket, if the limit allows."""
        with self._counting:
            if self._open_count < self._max_connections:
                self._open_count += 1
                return True
        return False

    def _give_room(self) -> None:
        """Undo _take_room (the Limit calls this holding its mutex)."""
        with self._counting:
            self._open_count -= 1

    def _release(self) -> None:
        """A socket closed, or never opened: its room to the first waiter, or free."""
        with self._counting:
            self._open_count -= 1
        if self._waiters:
            self._limit.dispatch()

    def _reuse_granted(self, stack: List[Any], entry: Any, blocking: bool) -> Any:
        """Put an idle socket granted to a waiter on its stack; None if it was unusable (then
        closed, its room released)."""
        return self._reuse_for(stack, blocking, [entry])

    def _after_fork(self, counted: int) -> None:
        """In a forked child: only `counted` sockets still hold room."""
        self._counting = threading.Lock()  # another thread may have held it at the fork
        self._open_count = min(counted, self._max_connections)

    def _in_use(self) -> int:
        """Sockets held by callers now, for stats()."""
        return sum(len(stack) for stack in list(self._stacks.values()))

    def _counts(self) -> Tuple[int, int, int]:
        """(opened, reused, discarded), for stats()."""
        return self._opened, self._reused, self._discarded

    def _stack(self) -> Optional[List[Any]]:
        """The caller's stack, or None: read, never changed, by the public class."""
        return self._own_stack(False)

    def _reuse_for(self, stack: List[Any], blocking: bool, idle: Optional[List[Any]] = None) -> Any:
        """Put the newest usable idle socket on the stack and return it; None if there is none.

        Older, dead and readable ones met on the way are closed. `idle`: the pool's, or one
        socket granted to a waiter.
        """
        if idle is None:
            idle = self._idle
        now = time.monotonic() if self._timed else 0.0
        born = 0.0
        expired = False
        while idle:
            try:
                sock = idle.pop()
            except IndexError:  # another thread took the last one
                return None
            if self._timed:
                entry = sock
                sock, born = entry[0], entry[1]
                expired = self._expired(born, entry[2], now)
            try:  # an interrupt may stop the checks: the socket is on no stack yet
                if expired or not self._usable(sock):
                    self._discarded += 1
                    self._close_discarded(sock)
                    continue
                # As if newly opened for this mode: blocking with the configured timeout, or not.
                timeout = self._timeout if blocking else 0.0
                if timeout is DEFAULT_TIMEOUT:
                    timeout = socket.getdefaulttimeout()
                if sock.gettimeout() != timeout:
                    sock.settimeout(timeout)
            except BaseException:
                self._close_discarded(sock)
                raise
            self._reused += 1
            # No call from the push to the end of the enter, and `+=` rather than append():
            # the interpreter runs signal handlers after calls, and an interrupt there would
            # leave the socket on the stack of a block that never began, with no exit to take
            # it off (CPython 3.11+; older ones check for signals between almost any two
            # bytecodes). A socket on the stack but not lent is closed, not kept, at exit.
            stack += (sock,)
            if self._lent is not None:
                self._lent[sock] = born
            return sock
        return None

    def _close_discarded(self, sock: Any) -> None:
        try:
            sock.close()
        finally:
            if self._max_connections:
                self._release()

    def _expired(self, born: float, since: float, now: float) -> bool:
        return bool(
            (self._idle_timeout and now - since >= self._idle_timeout)
            or (self._max_lifetime and now - born >= self._max_lifetime)
        )

    def _usable(self, sock: Any) -> bool:
        is_unusable = unusable(sock)
        if self._tls_usable is None:
            return not is_unusable
        return self._tls_check(sock, is_unusable)

    def _tls_check(self, sock: Any, is_unusable: bool) -> bool:
        try:  # Python code, which an interrupt may stop: the socket is on no stack
            return self._tls_usable(sock, is_unusable)  # type: ignore[misc]
        except BaseException:
            sock.close()
            raise

    def _unlend(self, stack: List[Any]) -> Optional[float]:
        """The innermost socket's time of connect if it may be kept (0.0 when untimed), or None.

        Taken while the socket is still on its stack: one in neither place would stay lent.
        """
        sock = stack[-1]
        if self._inherited and sock in self._inherited:
            self._inherited.discard(sock)
            return None
        if self._lent is None:
            return 0.0
        return self._lent.pop(sock, None)  # None: not lent since a fork

    def _kept(self, sock: Any, born: float, exc_type: Optional[Type[BaseException]]) -> bool:
        """Whether the socket went back to the idle pool; if not, the caller closes it."""
        if exc_type is not None or not is_open(sock):  # raised, closed it, or left a file open
            return False
        if self._tls_usable is not None and not self._tls_check(sock, False):  # TLS ended, say
            return False
        now = time.monotonic() if self._timed else 0.0
        if self._max_lifetime and now - born >= self._max_lifetime:
            self._discarded += 1
            return False
        if len(self._idle) >= self._pool_size:
            return False
        self._idle.append((sock, born, now) if self._timed else sock)
        return True
