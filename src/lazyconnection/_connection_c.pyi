"""Types of the compiled twin; they match the pure-Python class in _connection_py.py."""

import socket
import ssl
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Type, TypeVar

_Function = TypeVar("_Function", bound=Callable[..., Any])

class LazyConnection:
    def __init__(
        self,
        address: Any,
        family: int = ...,
        type: int = ...,
        proto: int = ...,
        *,
        max_depth: Optional[int] = ...,
        socket_factory: Optional[Callable[[int, int, int], Any]] = ...,
        timeout: Optional[float] = ...,
        source_address: Any = ...,
        socket_options: Iterable[Tuple[int, int, Any]] = ...,
        all_errors: bool = ...,
        ssl_context: Optional[ssl.SSLContext] = ...,
        server_hostname: Optional[str] = ...,
        on_connect: Optional[Callable[[Any], Any]] = ...,
        retries: int = ...,
        backoff: float = ...,
    ) -> None: ...
    def __enter__(self) -> socket.socket: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    async def __aenter__(self) -> socket.socket: ...
    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def __call__(self, func: _Function) -> _Function: ...
    @property
    def connections(self) -> Tuple[socket.socket, ...]: ...
    @property
    def sock(self) -> Optional[socket.socket]: ...
    @property
    def options(self) -> Dict[str, Any]: ...
    @property
    def address(self) -> Any: ...
    @property
    def family(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def proto(self) -> int: ...
    @property
    def max_depth(self) -> Optional[int]: ...
    @property
    def socket_factory(self) -> Callable[[int, int, int], Any]: ...
    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]: ...
