"""The pure-Python kernel of PyLazyConnection: the twin of _kernel_c.pyx, line for line."""

from __future__ import annotations

import socket
import weakref
from contextvars import ContextVar, Token
from threading import get_ident
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from ._registry import ALREADY_CONNECTED, close_elsewhere, sweep


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


def _push(stack: List[Any], sock: Any, depth_limit: int) -> Any:
    # Opening may have run code that entered this object too (an on_connect hook).
    if len(stack) >= depth_limit:
        sock.close()
        raise RuntimeError(ALREADY_CONNECTED)
    stack.append(sock)
    return sock


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
        "__weakref__",
    )

    def __init__(self) -> None:
        self._stacks: Dict[Any, List[Any]] = {}
        self._sweep_at = 8
        # (key, stack) last looked up: one thread or task needs no dict lookup. One tuple, so
        # that another thread never sees one key beside another's stack; the key, being weak,
        # keeps no finished context alive.
        self._last: Tuple[Any, Optional[List[Any]]] = (None, None)

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
        if self._open is None:
            sock = self._factory(self._family, self._type, self._proto)
            try:
                sock.connect(self._address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = self._open()  # connected, or closed before its error left
        return _push(stack, sock, self._depth_limit)  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None:
        stack = self._own_stack(False)
        if not stack:
            close_elsewhere(self._stacks, _parent(), exc_type)
            return
        stack.pop().close()

    def _reserve(self) -> List[Any]:
        """The caller's stack, with room for one more socket (for `async with`)."""
        return self._reserve_stack()

    def _push(self, stack: List[Any], sock: Any) -> Any:
        """Put a newly opened socket on the stack that _reserve gave."""
        return _push(stack, sock, self._depth_limit)

    def _stack(self) -> Optional[List[Any]]:
        """The caller's stack, or None: read, never changed, by the public class."""
        return self._own_stack(False)
