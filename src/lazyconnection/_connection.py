"""The public classes, written once in plain Python over the compiled or the pure kernel."""

from __future__ import annotations

import functools
import inspect
import os
import platform
import socket
import sys
import weakref
from socket import AF_INET, SOCK_STREAM
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, Type, TypeVar, Union

from . import _fork, _kernel_py
from ._limit import Limit
from ._opening import async_refusal, open_async, open_blocking
from ._pool import Pool, tls_usable
from ._settings import Settings, signature

_Function = TypeVar("_Function", bound=Callable[..., Any])
_FIELD_NAMES = frozenset(Settings.__dataclass_fields__)


# For type checkers the public class is the pure kernel's subclass, as PyLazyConnection is.
if TYPE_CHECKING:
    _Kernel = _kernel_py.Kernel
else:
    _Kernel = object


class _LazyConnection(_Kernel):
    """A socket connection opened by ``with`` and closed when the block ends.

    Nested blocks get independent sockets. Each thread, asyncio task and
    greenlet keeps its own stack of open sockets.

    ``address``, ``family``, ``type`` and ``proto`` are what ``socket.socket()``
    and ``connect()`` take; every other parameter is a keyword-only option,
    checked at construction (a bad value raises ``TypeError`` or ``ValueError``
    naming it). Construction does no I/O.
    """

    __slots__ = ()
    _settings: Settings
    _pool: Optional[Pool]
    _bound: Optional[Limit]

    def __init__(
        self,
        address: Any,
        family: int = AF_INET,
        type: int = SOCK_STREAM,
        proto: int = 0,
        **options: Any,
    ) -> None:
        unknown = sorted(options.keys() - _FIELD_NAMES)
        if unknown:
            raise TypeError(
                f"{self.__class__.__name__}() got an unexpected keyword argument {unknown[0]!r}"
            )
        settings = Settings(address, family, type, proto, **options)
        super().__init__()
        self._settings = settings  # type: ignore[misc]  # a slot of each public class
        self._set_kernel(
            settings.address,
            settings.family,
            settings.type,
            settings.proto,
            settings.socket_factory,  # type: ignore[arg-type]  # None became socket.socket
            None if settings.plain else functools.partial(open_blocking, settings),
            settings.depth_limit,
        )
        self._set_async(functools.partial(open_async, settings), async_refusal(settings))
        self._pool = None  # type: ignore[misc]  # a slot of each public class
        if settings.pool_size:
            self._pool = pool = Pool(self, timed=settings.max_lifetime is not None)  # type: ignore[misc]
            self._set_pool(
                pool.idle,
                pool.lent,
                pool.inherited,
                min(settings.pool_size, sys.maxsize),  # more than can be open: unlimited
                settings.idle_timeout or 0.0,
                settings.max_lifetime or 0.0,
                settings.timeout,
                None if settings.ssl_context is None else tls_usable,
            )
        _fork.track(self)
        self._bound = None  # type: ignore[misc]  # a slot of each public class
        if settings.max_connections is not None:
            limit = Limit(
                weakref.proxy(self),  # the kernel holds the limit: no cycle
                None if self._pool is None else self._pool.idle,
                min(settings.max_connections, sys.maxsize),
                settings.wait_timeout,
            )
            self._bound = limit  # type: ignore[misc]
            self._set_limit(limit, limit.waiters, limit.max_connections)

    __init__.__signature__ = signature(  # type: ignore[attr-defined]
        {"family": AF_INET, "type": SOCK_STREAM, "proto": 0}
    )

    def __call__(self, func: _Function) -> _Function:
        """Use as a decorator: each call runs inside a connection of its own.

        A coroutine function gets `async with`. A generator function is refused: its body
        runs after the call returns, when the connection would already be closed.
        """
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"cannot decorate the generator function {func.__qualname__}: its body runs"
                " after the call returns; use `with` (or `async with`) inside it instead"
            )
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    def close_idle(self) -> int:
        """Close every idle socket kept for reuse; return how many were closed."""
        if self._pool is None:
            return 0
        closed = self._pool.close_idle()
        if self._bound is not None:
            for _ in range(closed):  # their rooms, to waiters first
                self._release()
        return closed

    def stats(self) -> Dict[str, int]:
        """Counts of this object's sockets: opened, reused (handed out again), discarded
        (found dead, readable or expired, and closed instead of kept or handed out), idle
        (kept for reuse now), in_use (held by callers now) and waited (enters that waited
        for room under max_connections)."""
        opened, reused, discarded = self._counts()
        idle = 0 if self._pool is None else len(self._pool.idle)
        waited = 0 if self._bound is None else self._bound.waited
        return {
            "opened": opened,
            "reused": reused,
            "discarded": discarded,
            "idle": idle,
            "in_use": self._in_use(),
            "waited": waited,
        }

    @property
    def connections(self) -> Tuple[socket.socket, ...]:
        """The caller's open sockets, innermost last."""
        stack = self._stack()
        return () if stack is None else tuple(stack)

    @property
    def sock(self) -> Optional[socket.socket]:
        """The caller's innermost open socket, or None."""
        stack = self._stack()
        return stack[-1] if stack else None

    @property
    def options(self) -> Dict[str, Any]:
        """The connection options, defaults included (a copy)."""
        return self._settings.options()

    @property
    def address(self) -> Any:
        """The address given, as checked (a path-like ``AF_UNIX`` path as its str or bytes)."""
        return self._settings.address

    @property
    def family(self) -> int:
        """The address family, an ``AddressFamily`` where the socket module knows it."""
        return self._settings.family

    @property
    def type(self) -> int:
        """The socket type, a ``SocketKind`` where the socket module knows it."""
        return self._settings.type

    @property
    def proto(self) -> int:
        """The protocol number, as for ``socket.socket()``."""
        return self._settings.proto

    @property
    def max_depth(self) -> Optional[int]:
        """How many sockets one caller may have open at once; ``None``: no limit."""
        return self._settings.max_depth

    @property
    def socket_factory(self) -> Callable[..., Any]:
        """What makes each socket: ``socket.socket`` unless another was given."""
        return self._settings.socket_factory  # type: ignore[return-value]

    def __repr__(self) -> str:
        cls = self.__class__
        family = getattr(self.family, "name", self.family)
        type = getattr(self.type, "name", self.type)
        idle = "" if self._pool is None else f" idle={len(self._pool.idle)}"
        settings = self._settings
        if settings.max_connections is not None:
            idle += f" max_connections={settings.max_connections}"
            if settings.wait_timeout is not None:
                idle += f" wait_timeout={settings.wait_timeout}"
        return (
            f"<{cls.__module__}.{cls.__qualname__} address={self.address!r}"
            f" family={family} type={type} open={len(self.connections)}{idle}>"
        )

    def __reduce__(self) -> Tuple[Any, ...]:
        """Copies and pickles keep the configuration and a subclass's attributes, never sockets.

        The two public classes are named as `lazyconnection` exports them, so that a pickle
        loads under either implementation.
        """
        cls = self.__class__
        name = cls.__name__ if cls in (CLazyConnection, PyLazyConnection) else cls
        settings = self._settings
        positional = (settings.address, settings.family, settings.type, settings.proto)
        return _rebuild, (name, positional, settings.changed()), _instance_state(self)


def _rebuild(name: Union[str, type], positional: Tuple[Any, ...], options: Dict[str, Any]) -> Any:
    """Unpickle or copy: configured as the original was, by the public class's own __init__
    (a subclass's __init__ may take other arguments; its attributes come back as state)."""
    if name == "CLazyConnection":
        cls: Any = CLazyConnection or PyLazyConnection
    elif name == "PyLazyConnection":
        cls = PyLazyConnection
    else:
        cls = name
    connection = cls.__new__(cls)
    _LazyConnection.__init__(connection, *positional, **options)
    return connection


def _instance_state(connection: Any) -> Optional[Tuple[Any, Dict[str, Any]]]:
    """A subclass's own attributes, in its __dict__ or its slots, as copy and pickle keep them."""
    slots: Dict[str, Any] = {}
    for cls in type(connection).__mro__:
        if cls in (PyLazyConnection, CLazyConnection):
            break
        names = cls.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name not in ("__dict__", "__weakref__") and hasattr(connection, name):
                slots[name] = getattr(connection, name)
    state = getattr(connection, "__dict__", None) or None
    return (state, slots) if state or slots else None


class PyLazyConnection(_LazyConnection, _kernel_py.Kernel):
    __slots__ = ("_settings", "_pool", "_bound")
    __doc__ = _LazyConnection.__doc__


def _compiled_kernel() -> Optional[type]:
    """The compiled kernel where it can be used; why not is `lazyconnection.__main__`'s to say."""
    if platform.python_implementation() != "CPython" or os.environ.get(
        "LAZYCONNECTION_NO_EXTENSIONS"
    ):
        return None
    try:
        from ._kernel_c import Kernel  # type: ignore[import-not-found]
    except ImportError:  # not built here; on CPython the test suite fails loudly
        return None
    return Kernel  # type: ignore[no-any-return]


def _compiled_class() -> Optional[Type[PyLazyConnection]]:
    kernel = _compiled_kernel()
    if kernel is None:
        return None

    class CLazyConnection(_LazyConnection, kernel):  # type: ignore[misc,valid-type]
        __slots__ = ("_settings", "_pool", "_bound")
        __doc__ = _LazyConnection.__doc__

    CLazyConnection.__qualname__ = "CLazyConnection"
    # Typed as the pure-Python class: the same public interface, tested on both.
    return CLazyConnection


CLazyConnection = _compiled_class()
for _public in (PyLazyConnection, CLazyConnection):
    if _public is not None:
        _public.__module__ = "lazyconnection"
