"""The pure-Python LazyConnection: used where the compiled twin (_connection_c.pyx) is not."""

from __future__ import annotations

import socket
from contextvars import ContextVar, Token
from socket import AF_INET, SOCK_STREAM
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
)

if TYPE_CHECKING:
    import ssl

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

_Function = TypeVar("_Function", bound=Callable[..., Any])


class _Registry:
    """The open sockets of one context (thread, task or greenlet), per connection."""

    __slots__ = ("stacks", "token")

    def __init__(self) -> None:
        self.stacks: Dict[object, List[Any]] = {}
        self.token: Token[Optional[_Registry]]


# A context copied into a new task or thread carries its creator's registry with it.
_registries: ContextVar[Optional[_Registry]] = ContextVar("lazyconnection", default=None)


def _own_registry(create: bool) -> Optional[_Registry]:
    """This context's registry; one inherited from the context it was copied from is not."""
    registry = _registries.get()
    if registry is not None:
        try:
            # A token resets only in the context that set it: Python's one way to ask
            # "is this my context?" (the compiled twin compares the context itself).
            _registries.reset(registry.token)
        except ValueError:
            pass
        else:
            registry.token = _registries.set(registry)
            return registry
    if not create:
        return None
    registry = _Registry()
    registry.token = _registries.set(registry)
    return registry


def _own_stack(key: object) -> Optional[List[Any]]:
    """One connection's stack in this context, or None."""
    registry = _own_registry(False)
    return None if registry is None else registry.stacks.get(key)


def _push(
    stacks: Dict[object, List[Any]], key: object, stack: Optional[List[Any]], sock: Any
) -> None:
    """Put sock on the caller's stack for this connection, making the stack if need be."""
    if stack is None:
        stacks[key] = [sock]
    else:
        stack.append(sock)


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
        "_opener",
        "_depth_limit",
        "_key",
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
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        source_address: Any = None,
        socket_options: Iterable[Tuple[int, int, Any]] = (),
        all_errors: bool = False,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        on_connect: Optional[Callable[[Any], Any]] = None,
        retries: int = 0,
        backoff: float = 0.1,
    ) -> None:
        (
            self._address,
            self._family,
            self._type,
            self._proto,
            self._max_depth,
            self._socket_factory,
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
        self._depth_limit = depth_limit(self._max_depth)
        # Unique for ever, unlike id(self), and hashable whatever a subclass does to __eq__.
        self._key = object()

    def __enter__(self) -> socket.socket:
        stacks = _own_registry(True).stacks  # type: ignore[union-attr]
        stack = stacks.get(self._key)
        if stack is not None and len(stack) >= self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        opener = self._opener  # None when no option is set: the fast path
        if opener is None:
            sock = self._socket_factory(self._family, self._type, self._proto)
        else:
            sock = opener.open()  # connected, or closed before its error left
        try:
            if opener is None:
                sock.connect(self._address)
            _push(stacks, self._key, stack, sock)
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
        registry = _own_registry(False)
        stack = None if registry is None else registry.stacks.get(self._key)
        if not stack:
            raise RuntimeError(NO_OPEN_CONNECTION)
        sock = stack.pop()
        if not stack:
            del registry.stacks[self._key]  # type: ignore[union-attr]
        sock.close()

    async def __aenter__(self) -> socket.socket:
        stacks = _own_registry(True).stacks  # type: ignore[union-attr]
        stack = stacks.get(self._key)
        if stack is not None and len(stack) >= self._depth_limit:
            raise RuntimeError(ALREADY_CONNECTED)
        if self._opener is None:
            sock = await open_plain_async(
                self._socket_factory, self._family, self._type, self._proto, self._address
            )
        else:
            sock = await self._opener.open_async()  # connected, or closed before its error left
        try:
            _push(stacks, self._key, stack, sock)
        except BaseException:
            sock.close()
            raise
        return sock  # type: ignore[no-any-return]

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        LazyConnection.__exit__(self, exc_type, exc, tb)

    def __call__(self, func: _Function) -> _Function:
        """Use as a decorator: each call runs inside a connection of its own."""
        return decorate(self, func)  # type: ignore[return-value]

    @property
    def connections(self) -> Tuple[socket.socket, ...]:
        """The caller's open sockets, innermost last."""
        stack = _own_stack(self._key)
        return () if stack is None else tuple(stack)

    @property
    def sock(self) -> Optional[socket.socket]:
        """The caller's innermost open socket, or None."""
        stack = _own_stack(self._key)
        return None if not stack else stack[-1]

    @property
    def options(self) -> Dict[str, Any]:
        """The connection options, defaults included (a copy)."""
        return options_of(self._opener)

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
        stack = _own_stack(self._key)
        return describe(self, 0 if stack is None else len(stack))

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        return reduce(self)
