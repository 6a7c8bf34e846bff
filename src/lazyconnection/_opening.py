"""How sockets are opened beyond the plain connect, written once for `with` and `async with`.

The steps (retries, the addresses of an AF_UNSPEC name, preparing, connecting, TLS, the hook)
are one generator; it yields only what must be waited for, and two drivers do the waiting,
one blocking and one on the running event loop. Whatever fails on the way, interrupts and
cancellation included, closes the socket before the error leaves.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import sys
import time
import types
from typing import Any, Callable, Generator, List, Optional, Tuple

from ._settings import DEFAULT_TIMEOUT, Settings

# Each sleep between retries is backoff * 2**attempt seconds, but never longer than this.
MAX_BACKOFF_SECONDS = 5.0
RETRYABLE = (ConnectionRefusedError, TimeoutError, ConnectionResetError, socket.timeout)

# What the steps wait for: ("resolve", host, port, type, proto), ("connect", sock, address),
# ("handshake", sock), ("sleep", seconds) or ("await", awaitable).
Wait = Tuple[Any, ...]
Steps = Generator[Wait, Any, Any]


def retryable(error: BaseException) -> bool:
    """A refused, timed-out or reset connect, or a group made only of those."""
    if isinstance(error, RETRYABLE):
        return True
    exceptions = getattr(error, "exceptions", ())  # an ExceptionGroup (Python 3.11+)
    return bool(exceptions) and all(retryable(inner) for inner in exceptions)


def opening(settings: Settings, blocking: bool) -> Steps:
    """Open one connected socket, retrying what may be retried."""
    attempt = 0
    while True:
        try:
            return (yield from _open_once(settings, blocking))
        except Exception as error:
            if attempt >= settings.retries or not retryable(error):
                raise
        yield ("sleep", min(settings.backoff * 2**attempt, MAX_BACKOFF_SECONDS))
        attempt += 1


def _open_once(settings: Settings, blocking: bool) -> Steps:
    if settings.family != socket.AF_UNSPEC:
        address = (settings.family, settings.type, settings.proto, settings.address)
        return (yield from _open_to(settings, blocking, *address))
    host, port = settings.address
    errors: List[Exception] = []
    try:
        for family, type, proto, _, sockaddr in (
            yield ("resolve", host, port, settings.type, settings.proto)
        ):
            try:
                return (yield from _open_to(settings, blocking, family, type, proto, sockaddr))
            except Exception as error:
                errors.append(error)
        raise combined(errors, settings.all_errors)
    finally:
        errors = []  # the tracebacks refer to this frame: break the cycle


def _open_to(
    settings: Settings, blocking: bool, family: int, type: int, proto: int, sockaddr: Any
) -> Steps:
    sock = settings.socket_factory(family, type, proto)  # type: ignore[misc]
    try:
        if not blocking:
            sock.setblocking(False)
        elif settings.timeout is not DEFAULT_TIMEOUT:
            sock.settimeout(settings.timeout)
        for level, optname, value in settings.socket_options:
            sock.setsockopt(level, optname, value)
        if settings.source_address is not None:
            sock.bind(settings.source_address)
        yield ("connect", sock, sockaddr)
        if settings.ssl_context is not None:
            # The handshake is a step of its own, so that the socket that fails it is the
            # wrapped one, closed here, not left to the garbage collector.
            sock = settings.ssl_context.wrap_socket(
                sock, server_hostname=settings.server_hostname, do_handshake_on_connect=False
            )
            yield ("handshake", sock)
        if settings.on_connect is not None:
            checked = settings.on_connect(sock)
            if inspect.isawaitable(checked):
                yield ("await", checked)
    except BaseException:  # interrupts and cancellation too: nothing is left open
        sock.close()
        raise
    return sock


def open_blocking(settings: Settings) -> Any:
    """Run the steps, waiting in this thread."""
    driving = _drive(opening(settings, blocking=True), _wait_blocking, settings)
    try:
        driving.send(None)  # a blocking wait never suspends: this runs it to the end
    except StopIteration as done:
        return done.value
    raise AssertionError("a blocking wait suspended")  # pragma: no cover


async def open_async(settings: Settings) -> Any:
    """Run the steps on the running event loop: a non-blocking socket, connected without waits."""
    if settings.ssl_context is not None:
        raise NotImplementedError(
            "TLS is not supported with `async with`: the event loop's sock_* calls refuse"
            " SSL sockets; use asyncio.open_connection(..., ssl=context) for TLS streams"
        )
    if settings.plain:  # no option: as the kernel's plain `with`, the steps are one connect
        return await _open_plain_async(settings)
    return await _drive(opening(settings, blocking=False), _wait_async, settings)


async def _open_plain_async(settings: Settings) -> Any:
    sock = settings.socket_factory(settings.family, settings.type, settings.proto)  # type: ignore[misc]
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await connect_async(loop, sock, settings.address, socket.getdefaulttimeout())
    except BaseException:  # cancellation too: nothing is left open
        sock.close()
        raise
    return sock


# A generator-based coroutine rather than `async def`: the blocking driver runs it with one
# send(), and one interrupted before that leaves no "never awaited" coroutine behind.
@types.coroutine
def _drive(steps: Steps, wait: Callable[[Wait, Settings], Any], settings: Settings) -> Any:
    """Hand each step's wait to `wait`, and its result or error back to the steps."""
    try:
        step = next(steps)
        while True:
            try:
                result = yield from wait(step, settings)
            except BaseException as error:
                step = steps.throw(error)
            else:
                step = steps.send(result)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()  # a socket still open in an unfinished step is closed there


def _wait_blocking(wait: Wait, settings: Settings) -> Generator[Any, None, Any]:
    """Wait in this thread: a generator for `yield from` that never yields."""
    what = wait[0]
    if what == "connect":
        return wait[1].connect(wait[2])
    if what == "handshake":
        return wait[1].do_handshake()
    if what == "resolve":
        _, host, port, type, proto = wait
        return socket.getaddrinfo(host, port, 0, type, proto)  # looked up now: replaceable
    if what == "sleep":
        return time.sleep(wait[1])
    getattr(wait[1], "close", lambda: None)()  # a coroutine never awaited, closed quietly
    raise TypeError(
        "on_connect returned an awaitable in a blocking `with`; use `async with` to await it"
    )
    yield  # pragma: no cover


async def _wait_async(wait: Wait, settings: Settings) -> Any:
    """Wait on the running event loop."""
    what = wait[0]
    loop = asyncio.get_running_loop()
    if what == "connect":
        timeout = settings.timeout
        if timeout is DEFAULT_TIMEOUT:
            timeout = socket.getdefaulttimeout()
        return await connect_async(loop, wait[1], wait[2], timeout)
    if what == "resolve":
        _, host, port, type, proto = wait
        return await loop.getaddrinfo(host, port, type=type, proto=proto)
    if what == "sleep":
        return await asyncio.sleep(wait[1])
    return await wait[1]


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


def combined(errors: List[Exception], all_errors: bool) -> Exception:
    """What an AF_UNSPEC connect raises when every resolved address failed."""
    if not errors:
        return OSError("getaddrinfo returned no addresses")
    if not all_errors:
        return errors[0]  # as socket.create_connection does
    if sys.version_info >= (3, 11):
        return ExceptionGroup("every address failed", errors)  # noqa: F821
    return errors[-1]  # before Python 3.11 there is no ExceptionGroup: the last error
