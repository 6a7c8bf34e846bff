"""How sockets are opened beyond the fast path, written once for both implementations.

With no options the twins open the socket inline for `with`; any option hands the work to an
Opener, `async with` to the coroutines here, and whatever fails on the way closes the socket
before the error leaves. The decorator form lives here too.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional

# The same object socket.create_connection uses for "the stdlib's global default".
DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
# Each sleep between retries is backoff * 2**attempt seconds, but never longer than this.
MAX_BACKOFF_SECONDS = 5.0
RETRYABLE = (ConnectionRefusedError, TimeoutError, ConnectionResetError, socket.timeout)

DEFAULT_OPTIONS: Dict[str, Any] = {
    "timeout": DEFAULT_TIMEOUT,
    "source_address": None,
    "socket_options": (),
    "all_errors": False,
    "ssl_context": None,
    "server_hostname": None,
    "on_connect": None,
    "retries": 0,
    "backoff": 0.1,
}


def retryable(error: BaseException) -> bool:
    """A refused, timed-out or reset connect, or a group made only of those."""
    if isinstance(error, RETRYABLE):
        return True
    exceptions = getattr(error, "exceptions", ())  # an ExceptionGroup (Python 3.11+)
    return bool(exceptions) and all(retryable(inner) for inner in exceptions)


class Opener:
    """Makes, configures, connects, wraps and checks one socket; retries what may be retried."""

    def __init__(
        self,
        address: Any,
        family: int,
        type: int,
        proto: int,
        socket_factory: Callable[..., Any],
        options: Dict[str, Any],
    ) -> None:
        self.address = address
        self.family = family
        self.type = type
        self.proto = proto
        self.socket_factory = socket_factory
        self.options = options
        self.timeout = options["timeout"]
        self.source_address = options["source_address"]
        self.socket_options = options["socket_options"]
        self.all_errors = options["all_errors"]
        self.ssl_context = options["ssl_context"]
        self.server_hostname = options["server_hostname"]
        self.on_connect = options["on_connect"]
        self.retries = options["retries"]
        self.backoff = options["backoff"]

    def open(self) -> Any:
        attempt = 0
        while True:
            try:
                return self._open_once()
            except Exception as error:
                if attempt >= self.retries or not retryable(error):
                    raise
            time.sleep(min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS))
            attempt += 1

    def _open_once(self) -> Any:
        if self.family != socket.AF_UNSPEC:
            return self._open_to(self.family, self.type, self.proto, self.address)
        host, port = self.address
        errors: List[Exception] = []
        try:
            for family, type, proto, _, sockaddr in socket.getaddrinfo(
                host, port, 0, self.type, self.proto
            ):
                try:
                    return self._open_to(family, type, proto, sockaddr)
                except Exception as error:
                    errors.append(error)
            raise combined(errors, self.all_errors)
        finally:
            errors = []  # the tracebacks refer to this frame: break the cycle

    def _open_to(self, family: int, type: int, proto: int, sockaddr: Any) -> Any:
        sock = self.socket_factory(family, type, proto)
        try:
            if self.timeout is not DEFAULT_TIMEOUT:
                sock.settimeout(self.timeout)
            for level, optname, value in self.socket_options:
                sock.setsockopt(level, optname, value)
            if self.source_address is not None:
                sock.bind(self.source_address)
            sock.connect(sockaddr)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.server_hostname)
            if self.on_connect is not None:
                self.on_connect(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    async def open_async(self) -> Any:
        """The same on the running event loop: a non-blocking socket, connected without blocking."""
        if self.ssl_context is not None:
            raise NotImplementedError(
                "TLS is not supported with `async with`: the event loop's sock_* calls refuse"
                " SSL sockets; use asyncio.open_connection(..., ssl=context) for TLS streams"
            )
        attempt = 0
        while True:
            try:
                return await self._open_once_async()
            except Exception as error:
                if attempt >= self.retries or not retryable(error):
                    raise
            await asyncio.sleep(min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS))
            attempt += 1

    async def _open_once_async(self) -> Any:
        loop = asyncio.get_running_loop()
        if self.family != socket.AF_UNSPEC:
            return await self._open_to_async(loop, self.family, self.type, self.proto, self.address)
        host, port = self.address
        errors: List[Exception] = []
        try:
            for family, type, proto, _, sockaddr in await loop.getaddrinfo(
                host, port, type=self.type, proto=self.proto
            ):
                try:
                    return await self._open_to_async(loop, family, type, proto, sockaddr)
                except Exception as error:
                    errors.append(error)
            raise combined(errors, self.all_errors)
        finally:
            errors = []

    async def _open_to_async(
        self, loop: asyncio.AbstractEventLoop, family: int, type: int, proto: int, sockaddr: Any
    ) -> Any:
        sock = self.socket_factory(family, type, proto)
        try:
            sock.setblocking(False)
            for level, optname, value in self.socket_options:
                sock.setsockopt(level, optname, value)
            if self.source_address is not None:
                sock.bind(self.source_address)
            timeout = (
                socket.getdefaulttimeout() if self.timeout is DEFAULT_TIMEOUT else self.timeout
            )
            await connect_async(loop, sock, sockaddr, timeout)
            if self.on_connect is not None:
                result = self.on_connect(sock)
                if inspect.isawaitable(result):
                    await result
        except BaseException:  # CancelledError too: a cancelled connect leaves nothing open
            sock.close()
            raise
        return sock


async def connect_async(
    loop: asyncio.AbstractEventLoop, sock: Any, address: Any, timeout: Optional[float]
) -> None:
    if timeout is None:
        await loop.sock_connect(sock, address)
        return
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
    except asyncio.TimeoutError:
        raise socket.timeout("timed out") from None  # as the blocking connect says


async def open_plain_async(
    socket_factory: Callable[..., Any], family: int, type: int, proto: int, address: Any
) -> Any:
    """`async with` when no option is set: a non-blocking socket connected on the running loop."""
    sock = socket_factory(family, type, proto)
    try:
        sock.setblocking(False)
        await connect_async(asyncio.get_running_loop(), sock, address, socket.getdefaulttimeout())
    except BaseException:  # CancelledError too: a cancelled connect leaves nothing open
        sock.close()
        raise
    return sock


def decorate(connection: Any, func: Callable[..., Any]) -> Callable[..., Any]:
    """`@conn`: each call runs inside a connection of its own, `async with` for coroutines."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            async with connection:
                return await func(*args, **kwargs)

        return run_async

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with connection:
            return func(*args, **kwargs)

    return run


def combined(errors: List[Exception], all_errors: bool) -> Exception:
    """What an AF_UNSPEC connect raises when every resolved address failed."""
    if not errors:
        return OSError("getaddrinfo returned no addresses")
    if not all_errors:
        return errors[0]  # as socket.create_connection does
    if sys.version_info >= (3, 11):
        return ExceptionGroup("every address failed", errors)  # noqa: F821
    return errors[-1]  # before Python 3.11 there is no ExceptionGroup: the last error
