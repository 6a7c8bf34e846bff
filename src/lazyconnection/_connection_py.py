"""The pure-Python LazyConnection: used where the compiled twin (_connection_c.pyx) is not."""

from __future__ import annotations

import socket
from contextvars import ContextVar, Token
from socket import AF_INET, SOCK_STREAM
from types import TracebackType
from typing import Any, Callable, Optional, Tuple, Type

from ._config import (
    ALREADY_CONNECTED,
    FOREIGN_CONNECTION,
    NO_OPEN_CONNECTION,
    check_arguments,
    depth_limit,
    describe,
    reduce,
)


class _Frame:
    """One open socket of a stack; the stack lives in a context variable as linked frames."""

    __slots__ = ("sock", "parent", "depth", "token")

    def __init__(self, sock: Any, parent: Optional[_Frame], depth: int) -> None:
        self.sock = sock
        self.parent = parent
        self.depth = depth
        self.token: Token[Optional[_Frame]]


class LazyConnection:
    """A socket connection opened by ``with`` and closed when the block ends.

    Nested blocks get independent sockets. Each thread, asyncio task and
    greenlet keeps its own stack of open sockets.
    """

    __slots__ = (
        "_address",
        "_family",
        "_type",
        "_proto",
        "_max_depth",
        "_socket_factory",
        "_depth_limit",
        "_stack",
        "__weakref__",
    )

    def __init__(
        self,
        address: Any,
        family: int = AF_INET,
        type: int = SOCK_STREAM,
        proto: int = 0,
        *,
        max_depth: Optional[int] = None,
        socket_factory: Optional[Callable[[int, int, int], Any]] = None,
    ) -> None:
        (
            self._address,
            self._family,
            self._type,
            self._proto,
            self._max_depth,
            self._socket_factory,
        ) = check_arguments(address, family, type, proto, max_depth, socket_factory)
        self._depth_limit = depth_limit(self._max_depth)
        # Context variables, unlike thread locals, also separate asyncio tasks and greenlets.
        self._stack: ContextVar[Optional[_Frame]] = ContextVar("lazyconnection", default=None)

    def __enter__(self) -> socket.socket:
        top = self._stack.get()
        depth = 1 if top is None else top.depth + 1
        if depth > self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        sock = self._socket_factory(self._family, self._type, self._proto)
        try:
            sock.connect(self._address)
            frame = _Frame(sock, top, depth)
            frame.token = self._stack.set(frame)
        except BaseException:
            sock.close()
            raise
        return sock  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        top = self._stack.get()
        if top is None:
            raise RuntimeError(NO_OPEN_CONNECTION)
        try:
            # The token refuses a reset from any context but the one that pushed it:
            # a task started inside a block sees its creator's sockets but cannot close them.
            self._stack.reset(top.token)
        except ValueError:
            raise RuntimeError(FOREIGN_CONNECTION) from None
        top.sock.close()

    @property
    def connections(self) -> Tuple[socket.socket, ...]:
        """The caller's open sockets, innermost last."""
        socks = []
        frame = self._stack.get()
        while frame is not None:
            socks.append(frame.sock)
            frame = frame.parent
        return tuple(reversed(socks))

    @property
    def sock(self) -> Optional[socket.socket]:
        """The caller's innermost open socket, or None."""
        top = self._stack.get()
        return None if top is None else top.sock  # type: ignore[no-any-return]

    @property
    def address(self) -> Any:
        return self._address

    @property
    def family(self) -> int:
        return self._family

    @property
    def type(self) -> int:
        return self._type

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def max_depth(self) -> Optional[int]:
        return self._max_depth  # type: ignore[no-any-return]

    @property
    def socket_factory(self) -> Callable[[int, int, int], Any]:
        return self._socket_factory

    def __repr__(self) -> str:
        top = self._stack.get()
        return describe(self, 0 if top is None else top.depth)

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        return reduce(self)
