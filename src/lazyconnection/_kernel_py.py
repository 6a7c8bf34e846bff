"""The pure-Python kernel of PyLazyConnection: the twin of _kernel_c.pyx, line for line."""

from __future__ import annotations

import socket
import time
import weakref
from contextvars import ContextVar, Token
from threading import get_ident
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from ._pool import unusable
from ._registry import ALREADY_CONNECTED, sweep, take_elsewhere
from ._settings import DEFAULT_TIMEOUT


class Caller:
    """One context (thread, task or greenlet): its weak reference keys its stack everywhere."""

    __slots__ = ("key", "parent", "proof", "thread", "__weakref__")

    def __init__(self, inherited: Optional[Caller]) -> None:
        self.key = weakref.ref(self)  # dead once no context holds this caller
        # The key of the caller of the context this one was copied from, or None.
        self.parent = None if inherited is None else inherited.key
        self.proof: Optional[Token[Optional[Caller]]] = None
        self.thread = get_ident()


# A context copied into a new task or thread carries its creator's caller with it.
_callers: ContextVar[Optional[Caller]] = ContextVar("lazyconnection", default=None)


def _own_caller() -> Optional[Caller]:
    """This context's caller, or None: one inherited from the context it was copied from is not."""
    caller = _callers.get()
    if caller is not None:
        try:
            # Only the context that made a token can spend it: Python's one way to ask "is this
            # value mine?" (the compiled twin compares the context). Spending it changes no
            # value: every proof is made when the variable already holds this caller.
            _callers.reset(caller.proof)  # type: ignore[arg-type]
        except ValueError:
            return None
        except (RuntimeError, TypeError):
            # Spent by an owner interrupted before it made the next proof; only its thread retries.
            if caller.thread != get_ident():
                return None
        caller.proof = _callers.set(caller)
        return caller
    return None


def _new_caller() -> Caller:
    caller = Caller(_callers.get())
    _callers.set(caller)
    caller.proof = _callers.set(caller)
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
        "_idle_timeout",
        "_max_lifetime",
        "_timeout",
        "_tls_usable",
        "__weakref__",
    )

    def __init__(self) -> None:
        self._stacks: Dict[Any, List[Any]] = {}
        self._sweep_at = 8
        # (key, stack) last looked up: one thread or task needs no dict lookup. One tuple, so
        # that another thread never sees one key beside another's stack; the key, being weak,
        # keeps no finished context alive.
        self._last: Tuple[Any, Optional[List[Any]]] = (None, None)
        self._opened = self._reused = self._discarded = 0
        # Reuse, set by _set_pool when pool_size > 0.
        self._pool_size = 0
        # (socket, connected at, idle since) of every idle socket, newest last
        self._idle: List[Tuple[Any, float, float]] = None  # type: ignore[assignment]
        # socket handed out from this pool -> connected at (0.0 if untimed)
        self._lent: Dict[Any, float] = None  # type: ignore[assignment]
        self._idle_timeout = self._max_lifetime = 0.0  # 0.0: none
        self._timeout: Any = DEFAULT_TIMEOUT
        self._tls_usable: Optional[Callable[[Any, bool], bool]] = None

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

    def _set_pool(
        self,
        idle: List[Tuple[Any, float, float]],
        lent: Dict[Any, float],
        pool_size: int,
        idle_timeout: float,
        max_lifetime: float,
        timeout: Any,
        tls_usable: Optional[Callable[[Any, bool], bool]],
    ) -> None:
        self._idle = idle
        self._lent = lent
        self._pool_size = pool_size
        self._idle_timeout = idle_timeout
        self._max_lifetime = max_lifetime
        self._timeout = timeout
        self._tls_usable = tls_usable

    def _own_stack(self, create: bool) -> Optional[List[Any]]:
        caller = _own_caller()
        if caller is None:
            if not create:
                return None
            caller = _new_caller()
        last = self._last
        if caller.key is last[0]:
            return last[1]
        found = self._stacks.get(caller.key)
        if found is not None:
            stack = found
        elif not create:
            return None
        else:
            if len(self._stacks) >= self._sweep_at:
                self._sweep_at = sweep(self._stacks)
            stack = []
            self._stacks[caller.key] = stack
        self._last = (caller.key, stack)
        return stack

    def _reserve_stack(self) -> List[Any]:
        stack: List[Any] = self._own_stack(True)  # type: ignore[assignment]
        if len(stack) >= self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        return stack

    def __enter__(self) -> socket.socket:
        stack = self._reserve_stack()
        if self._pool_size:
            reused = self._checkout_for(True)
            if reused is not None:
                return self._push(stack, reused[0], reused[1])  # type: ignore[no-any-return]
        if self._open is None:
            sock = self._factory(self._family, self._type, self._proto)
            try:
                sock.connect(self._address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = self._open()  # connected, or closed before its error left
        return self._push(stack, sock, None)  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        stack = self._own_stack(False)
        if stack:
            born = self._unlend(stack)
            sock = stack.pop()
        else:
            sock, born = take_elsewhere(self._stacks, _parent(), exc_type, self._lent)
        if born is None or not self._kept(sock, born, exc_type):
            sock.close()

    def _reserve(self) -> List[Any]:
        """The caller's stack, with room for one more socket (for `async with`)."""
        return self._reserve_stack()

    def _checkout(self) -> Optional[Tuple[Any, float, float]]:
        """An idle socket made ready for `async with`, as (socket, connected at), or None."""
        return self._checkout_for(False)

    def _push(self, stack: List[Any], sock: Any, born: Optional[float]) -> Any:
        """Put a socket on the stack that _reserve gave: reused (born given) or newly opened."""
        # Opening may have run code that entered this object too (an on_connect hook).
        if len(stack) >= self._depth_limit:
            sock.close()
            raise RuntimeError(ALREADY_CONNECTED)
        stack.append(sock)
        if born is None:  # newly opened
            self._opened += 1
            if not self._pool_size:
                return sock
            born = time.monotonic() if self._max_lifetime else 0.0
        self._lent[sock] = born
        return sock

    def _counts(self) -> Tuple[int, int, int]:
        """(opened, reused, discarded), for stats()."""
        return self._opened, self._reused, self._discarded

    def _stack(self) -> Optional[List[Any]]:
        """The caller's stack, or None: read, never changed, by the public class."""
        return self._own_stack(False)

    def _checkout_for(self, blocking: bool) -> Optional[Tuple[Any, float, float]]:
        """The newest idle socket still usable, as (socket, connected at), or None.

        Older, dead and readable ones met on the way are closed.
        """
        now = time.monotonic() if self._idle_timeout or self._max_lifetime else 0.0
        while self._idle:
            try:
                entry = self._idle.pop()
            except IndexError:  # another thread took the last one
                return None
            sock = entry[0]
            if self._expired(entry[1], entry[2], now) or not self._usable(sock):
                self._discarded += 1
                sock.close()
                continue
            # As if newly opened for this mode: blocking with the configured timeout, or not.
            timeout = self._timeout if blocking else 0.0
            if timeout is DEFAULT_TIMEOUT:
                timeout = socket.getdefaulttimeout()
            if sock.gettimeout() != timeout:
                sock.settimeout(timeout)
            self._reused += 1
            return entry
        return None

    def _expired(self, born: float, since: float, now: float) -> bool:
        return bool(
            (self._idle_timeout and now - since >= self._idle_timeout)
            or (self._max_lifetime and now - born >= self._max_lifetime)
        )

    def _usable(self, sock: Any) -> bool:
        is_unusable = unusable(sock)
        if self._tls_usable is not None:
            return self._tls_usable(sock, is_unusable)
        return not is_unusable

    def _unlend(self, stack: List[Any]) -> Optional[float]:
        """The innermost socket's time of connect, taken from the lent ones; None if not lent.

        Taken before the socket leaves the stack: a socket in neither place would stay lent.
        """
        if not self._pool_size:
            return None
        return self._lent.pop(stack[-1], None)  # None: inherited over a fork

    def _kept(self, sock: Any, born: float, exc_type: Optional[Type[BaseException]]) -> bool:
        """Whether the socket went back to the idle pool; if not, the caller closes it."""
        if exc_type is not None or len(self._idle) >= self._pool_size or sock.fileno() < 0:
            return False
        now = time.monotonic() if self._idle_timeout or self._max_lifetime else 0.0
        if self._max_lifetime and now - born >= self._max_lifetime:
            self._discarded += 1
            return False
        self._idle.append((sock, born, now))
        return True
