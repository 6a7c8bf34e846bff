"""How sockets are opened beyond the plain connect, written once for `with` and `async with`.

The steps (retries, the addresses of an AF_UNSPEC name tried in turn or raced, preparing,
connecting, TLS, the hook) are one generator; it yields only what must be waited for, and two
drivers do the waiting, one blocking and one on the running event loop. Whatever fails on the
way, interrupts and cancellation included, closes the socket before the error leaves: in a
Happy Eyeballs race, every socket but the winner.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
import os
import select
import selectors
import socket
import sys
import time
import types
from typing import Any, Callable, Dict, Generator, List, Optional, Tuple

from ._settings import DEFAULT_TIMEOUT, Settings

# Each sleep between retries is backoff * 2**attempt seconds, but never longer than this.
MAX_BACKOFF_SECONDS = 5.0
RETRYABLE = (ConnectionRefusedError, TimeoutError, ConnectionResetError, socket.timeout)

# What the steps wait for: ("resolve", host, port, type, proto), ("connect", sock, address),
# ("handshake", sock), ("sleep", seconds), ("await", awaitable), or ("poll", sockets,
# seconds or None): those of the non-blocking sockets whose connect has finished, maybe none.
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
        yield ("sleep", backoff_seconds(settings.backoff, attempt))
        attempt += 1


def backoff_seconds(backoff: float, attempt: int) -> float:
    """backoff * 2**attempt, at most MAX_BACKOFF_SECONDS, for any number of attempts."""
    try:
        return min(math.ldexp(backoff, attempt), MAX_BACKOFF_SECONDS)
    except OverflowError:  # beyond any float, so beyond the cap
        return MAX_BACKOFF_SECONDS


def _open_once(settings: Settings, blocking: bool) -> Steps:
    if settings.family != socket.AF_UNSPEC:
        address = (settings.family, settings.type, settings.proto, settings.address)
        return (yield from _open_to(settings, blocking, *address))
    host, port = settings.address
    resolved = yield ("resolve", host, port, settings.type, settings.proto)
    # One address has nothing to race: its attempt alone is the plain connect, which is cheaper.
    if settings.happy_eyeballs_delay is not None and len(resolved) > 1:
        return (yield from _race(settings, blocking, interleaved(resolved)))
    errors: List[Exception] = []
    try:
        for family, type, proto, _, sockaddr in resolved:
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
    sock = _prepared(settings, blocking, family, type, proto)
    try:
        yield ("connect", sock, sockaddr)
        return (yield from _finished(settings, sock))
    except BaseException:  # interrupts and cancellation too: nothing is left open
        sock.close()
        raise


def _prepared(settings: Settings, blocking: bool, family: int, type: int, proto: int) -> Any:
    """A new socket with the options set and the source bound, not yet connected."""
    sock = settings.socket_factory(family, type, proto)  # type: ignore[misc]
    try:
        if not blocking:
            sock.setblocking(False)
        elif settings.timeout is not DEFAULT_TIMEOUT:
            sock.settimeout(settings.timeout)
        # The presets first: a triple the caller spells out in socket_options has the last word.
        for level, optname, value in settings.tcp_presets() + settings.socket_options:
            sock.setsockopt(level, optname, value)
        if settings.source_address is not None:
            sock.bind(settings.source_address)
    except BaseException:
        sock.close()
        raise
    return sock


def _finished(settings: Settings, sock: Any) -> Steps:
    """TLS and the hook on a connected socket; if either fails, the socket (wrapped, once it
    is) is closed here. Wrapping detaches the plain socket: closing that one does nothing."""
    try:
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
    except BaseException:  # interrupts and cancellation too
        sock.close()
        raise
    return sock


def interleaved(resolved: List[Any]) -> List[Any]:
    """The addresses in RFC 8305 section 4's order: the resolver's first choice, then
    alternating between address families, each family keeping the resolver's order."""
    by_family: Dict[int, List[Any]] = {}
    for info in resolved:
        by_family.setdefault(info[0], []).append(info)
    rounds = itertools.zip_longest(*by_family.values())
    return [info for row in rounds for info in row if info is not None]


def _race(settings: Settings, blocking: bool, addresses: List[Any]) -> Steps:
    """Happy Eyeballs (RFC 8305 section 5): start the next address's connect when the last
    has not finished within the delay, or at once when one fails; the first to connect wins.

    Every attempt is a non-blocking socket and the only wait is ("poll", sockets, seconds),
    which returns those sockets whose connect has finished, either way. `timeout` bounds the
    whole race. Every socket but the winner is closed on the way out, whatever the way out.
    """
    delay: float = settings.happy_eyeballs_delay  # type: ignore[assignment]
    timeout = settings.timeout
    if timeout is DEFAULT_TIMEOUT:
        timeout = socket.getdefaulttimeout()
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = list(addresses)
    errors: List[Optional[Exception]] = []  # one per attempt started, in order; None: not yet
    pending: Dict[Any, int] = {}  # socket: its attempt's place in `errors`
    attempts: List[Any] = []  # every socket made
    connected = None
    winner = None  # what is handed out: `connected`, or its TLS wrapper
    next_start = time.monotonic()
    try:
        while connected is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline and errors:  # none starts after it
                for place in pending.values():
                    errors[place] = socket.timeout("timed out")
                raise combined(errors, settings.all_errors)  # type: ignore[arg-type]
            if waiting and (now >= next_start or not pending):
                next_start = now + delay
                connected = _start(settings, waiting.pop(0), attempts, pending, errors)
                if errors[-1] is not None:
                    next_start = now  # a failed attempt lets the next one start at once
                continue
            if not pending:
                raise combined(errors, settings.all_errors)  # type: ignore[arg-type]
            wait = next_start - now if waiting else None
            if deadline is not None:
                wait = deadline - now if wait is None else min(wait, deadline - now)
            for sock in (yield ("poll", list(pending), wait)):
                place = pending.pop(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0 and connected is None:
                    connected = sock  # two at once: the first the poll reports
                elif code != 0:
                    errors[place] = OSError(code, os.strerror(code))
                    next_start = time.monotonic()
        if blocking:  # handed out as the blocking `with` hands out every socket
            connected.settimeout(timeout)
        winner = yield from _finished(settings, connected)
        return winner
    finally:
        for sock in attempts:
            if sock is not winner:  # the runners-up (failed, pending or also connected), and
                sock.close()  # the first to connect too, unless it is handed out
        errors = []  # the tracebacks refer to this frame: break the cycle


def _start(
    settings: Settings,
    address: Any,
    attempts: List[Any],
    pending: Dict[Any, int],
    errors: List[Optional[Exception]],
) -> Any:
    """Begin one attempt's connect; the socket if it connected at once, else None."""
    family, type, proto, _, sockaddr = address
    errors.append(None)
    try:
        sock = _prepared(settings, False, family, type, proto)
    except Exception as error:
        errors[-1] = error
        return None
    attempts.append(sock)
    try:
        sock.connect(sockaddr)
    except (BlockingIOError, InterruptedError):
        pending[sock] = len(errors) - 1  # under way: a poll tells how it ends
        return None
    except Exception as error:
        errors[-1] = error
        return None
    return sock  # at once: a fast loopback, say


def open_blocking(settings: Settings) -> Any:
    """Run the steps, waiting in this thread."""
    driving = _drive(opening(settings, blocking=True), _wait_blocking, settings)
    try:
        driving.send(None)  # a blocking wait never suspends: this runs it to the end
    except StopIteration as done:
        return done.value
    raise AssertionError("a blocking wait suspended")  # pragma: no cover


NO_EVENT_LOOP = (
    "`async with` on a LazyConnection needs a running asyncio event loop; under trio (or"
    " another event loop) use a blocking `with` in a worker thread instead, for instance"
    " in trio.to_thread.run_sync"
)


def async_refusal(settings: Settings) -> Optional[str]:
    """Why `async with` is refused, whether its socket would be opened or reused (the kernels
    check it, and the running event loop, before anything is reserved); None if it is not."""
    if settings.ssl_context is None:
        return None
    return (
        "TLS is not supported with `async with`: the event loop's sock_* calls refuse"
        " SSL sockets; use asyncio.open_connection(..., ssl=context) for TLS streams"
    )


async def open_async(settings: Settings) -> Any:
    """Run the steps on the running event loop: a non-blocking socket, connected without waits."""
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
    if what == "poll":
        return _poll_blocking(wait[1], wait[2])
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
    if what == "poll":
        return await _poll_async(loop, wait[1], wait[2])
    return await wait[1]


def _poll_blocking(socks: List[Any], timeout: Optional[float]) -> List[Any]:
    """The sockets whose connect has finished (a connect ends writable, either way)."""
    if not hasattr(select, "poll"):  # Windows: a failed connect shows in select's third list
        with selectors.SelectSelector() as selector:
            for sock in socks:
                selector.register(sock, selectors.EVENT_WRITE)
            return [key.fileobj for key, _ in selector.select(timeout)]
    # poll(2) itself: a third of what selectors.PollSelector costs per wait.
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLOUT)
    # poll(2) takes a C int of milliseconds (24.8 days): a longer wait returns early, and
    # the race, finding its deadline not yet reached, polls again.
    milliseconds = None if timeout is None else min(math.ceil(timeout * 1000), 2**31 - 1)
    finished = {fd for fd, _ in poller.poll(milliseconds)}
    return [sock for sock in socks if sock.fileno() in finished]


async def _poll_async(
    loop: asyncio.AbstractEventLoop, socks: List[Any], timeout: Optional[float]
) -> List[Any]:
    """The same on the running loop: its own writer callbacks, removed before returning."""
    ready: List[Any] = []
    woken = loop.create_future()

    def finished(sock: Any) -> None:
        loop.remove_writer(sock)  # once: the loop may poll again before this task resumes
        ready.append(sock)
        if not woken.done():
            woken.set_result(None)

    try:
        for sock in socks:
            loop.add_writer(sock, finished, sock)
        await asyncio.wait([woken], timeout=timeout)
    finally:
        for sock in socks:
            loop.remove_writer(sock)
    return ready


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
