"""The wait for room under max_connections: one FIFO of waiters shared by `with` and `async with`.

Both kernels keep the count of open sockets themselves and take a room without this module
while none is waiting and the limit is not reached; everything else is here, written once.
A waiter is granted either an idle socket (one a caller returned or kept idle) or a room to
open one in; whichever it gets, it holds one reservation, which every way out (a failed
connect, a timeout, KeyboardInterrupt, a cancellation) hands on to the next waiter or
releases. The steps are one generator, as _opening's are: a blocking and an asyncio driver
do only the waiting itself.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import weakref
from asyncio import _get_running_loop
from threading import get_ident
from typing import Any, Deque, Generator, List, Optional


class PoolTimeout(TimeoutError):
    """No room came within wait_timeout: max_connections sockets stayed open meanwhile."""


SELF_DEADLOCK = (
    "max_connections={} sockets are open in this thread, task or greenlet's own nested blocks:"
    " waiting for room would wait for itself"
)

# What a waiter is granted when no idle socket is there: a room to open a socket in.
ROOM: Any = object()


class Waiter:
    """One caller waiting for room: granted under the mutex, then woken by its own means."""

    __slots__ = ("granted", "wake", "thread")

    def __init__(self, wake: Any) -> None:
        self.granted: Any = None  # ROOM or an idle entry, once granted
        self.wake = wake  # a held threading.Lock, or (loop, future)
        self.thread = get_ident()


class Limit:
    """The waiters of one LazyConnection with max_connections, and how many waited."""

    __slots__ = (
        "kernel",
        "idle",
        "max_connections",
        "wait_timeout",
        "waiters",
        "waited",
        "_mutex",
        "__weakref__",
    )

    def __init__(
        self,
        kernel: Any,
        idle: Optional[List[Any]],
        max_connections: int,
        wait_timeout: Optional[float],
    ) -> None:
        self.kernel = kernel  # a weak proxy: the kernel holds this object
        self.idle = idle  # the pool's idle list, or None without pool_size
        self.max_connections = max_connections
        self.wait_timeout = wait_timeout
        # The kernels read it to tell whether anyone waits: a new caller then queues behind.
        self.waiters: Deque[Waiter] = collections.deque()
        self.waited = 0
        # Held only to change the waiters and hand out what they are granted, never while
        # waiting. Made at construction: under gevent monkey-patching, a gevent lock.
        self._mutex = threading.Lock()
        _limits.add(self)

    def dispatch(self) -> None:
        """Grant idle sockets, then free rooms, to the waiters in the order they came.

        Called by whoever made something available after publishing it (a socket put idle,
        a room given back) and by a waiter after queueing: whichever runs second sees both.
        """
        with self._mutex:
            self._dispatch_locked()

    def _dispatch_locked(self) -> None:
        waiters = self.waiters
        while waiters:
            idle = self.idle
            if idle:
                try:
                    granted = idle.pop()
                except IndexError:  # another thread took the last one
                    continue
            elif self.kernel._take_room():
                granted = ROOM
            else:
                return
            waiter = waiters.popleft()
            waiter.granted = granted
            if not _wake(waiter):  # its event loop is closed: nobody will take it
                waiter.granted = None
                self._hand_on(granted)

    def _hand_on(self, granted: Any) -> None:
        """A reservation nobody takes goes back where it came from; the mutex is held."""
        if granted is ROOM:
            self.kernel._give_room()
        else:
            self.idle.append(granted)  # type: ignore[union-attr]

    def checkout(self, stack: List[Any], front: bool) -> Generator[Waiter, None, Any]:
        """Wait for a reservation: yields the queued waiter, for a driver to wait on its wake,
        and returns what it was granted. The driver raises into it on interrupt, cancellation
        or timeout; anything granted meanwhile is then handed on."""
        if len(stack) >= self.max_connections:  # only this caller could make room
            raise RuntimeError(SELF_DEADLOCK.format(self.max_connections))
        waiter = Waiter(None)
        yield waiter  # the driver sets waiter.wake before it is queued
        with self._mutex:
            if front:  # granted a socket that turned out dead: it keeps its place
                self.waiters.appendleft(waiter)
            else:
                self.waiters.append(waiter)
                self.waited += 1
            self._dispatch_locked()  # room may have come while it queued
        try:
            yield waiter  # the driver waits; True when woken, False on timeout
        except BaseException:
            self._leave(waiter)
            raise
        if waiter.granted is None:  # timed out, unless granted after all
            if self._timed_out(waiter):
                raise PoolTimeout(
                    f"no room within wait_timeout={self.wait_timeout} s:"
                    f" max_connections={self.max_connections} sockets stayed open"
                )
        return waiter.granted

    def _timed_out(self, waiter: Waiter) -> bool:
        """Out of the queue, unless granted at that very moment: then it keeps the grant."""
        with self._mutex:
            if waiter.granted is not None:
                return False
            self.waiters.remove(waiter)
            return True

    def _leave(self, waiter: Waiter) -> bool:
        """The waiter gives up: out of the queue, or, granted at that moment, hands it on.
        True if it was still waiting."""
        with self._mutex:
            granted, waiter.granted = waiter.granted, None
            if granted is None:
                try:
                    self.waiters.remove(waiter)
                except ValueError:  # pragma: no cover - granted and wake failed
                    pass
                return True
            self._hand_on(granted)
            self._dispatch_locked()
            return False

    def enter_blocking(self, stack: List[Any]) -> Any:
        """The blocking `with` at the limit: wait, then reuse or open with the reservation."""
        front = False
        while True:
            granted = _wait_blocking(self.checkout(stack, front), self.wait_timeout)
            if granted is ROOM:
                return self.kernel._open_reserved(stack)
            sock = self.kernel._reuse_granted(stack, granted, True)
            if sock is not None:
                return sock
            front = True  # that socket was dead and its room released: wait again, first

    async def enter_async(self, stack: List[Any], open_async: Any) -> Any:
        """`async with` under the limit: the same, its wait on the running loop."""
        kernel = self.kernel
        front = False
        while True:
            if self.waiters or front:
                granted = await _wait_async(self.checkout(stack, front), self.wait_timeout)
            else:  # nobody waits: an idle socket, or a room, at once
                sock = kernel._reuse(stack) if self.idle is not None else None
                if sock is not None:
                    return sock
                if kernel._take_room():
                    granted = ROOM
                else:
                    granted = await _wait_async(self.checkout(stack, front), self.wait_timeout)
            if granted is ROOM:
                sock = None
                try:
                    sock = await open_async()
                    return kernel._push(stack, sock)
                except BaseException:  # a failed connect, or a cancellation: room for another
                    if not (stack and stack[-1] is sock):  # pushed: the caller's exit undoes it
                        kernel._release()
                    raise
            sock = kernel._reuse_granted(stack, granted, False)
            if sock is not None:
                return sock
            front = True

    def after_fork(self) -> None:
        """In a forked child only the forking thread is left: its waiters stay queued, and
        only its sockets count (other threads' blocks never end here; _fork closes them)."""
        here = get_ident()
        self._mutex = threading.Lock()  # another thread may have held it at the fork
        mine = [waiter for waiter in self.waiters if waiter.thread == here]
        self.waiters.clear()  # the kernel reads this very deque
        self.waiters.extend(mine)
        kernel = self.kernel
        counted = sum(
            len(stack)
            for key, stack in list(kernel._stacks.items())
            if stack and kernel._caller_thread(key) == here
        )
        kernel._after_fork(counted)


def _wake(waiter: Waiter) -> bool:
    wake = waiter.wake
    if type(wake) is tuple:
        loop, future = wake
        if loop is _get_running_loop():  # this thread's loop: no need to wake it up
            _set_woken(future)
            return True
        try:
            loop.call_soon_threadsafe(_set_woken, future)
        except RuntimeError:  # the loop is closed
            return False
        return True
    wake.release()
    return True


def _set_woken(future: Any) -> None:
    if not future.done():
        future.set_result(True)


def _wait_blocking(steps: Generator[Waiter, Any, Any], timeout: Optional[float]) -> Any:
    """Drive the checkout in this thread: a lock per waiter, acquired with a timeout, which
    gevent and eventlet make cooperative when they patch threading."""
    try:
        waiter = next(steps)
        lock = threading.Lock()
        lock.acquire()
        waiter.wake = lock
        steps.send(None)  # queued
        if timeout is None:
            woken = lock.acquire()
        elif timeout == 0:
            woken = lock.acquire(False)
        else:
            woken = lock.acquire(True, timeout)
        steps.send(woken)
    except StopIteration as done:
        return done.value
    except BaseException as error:  # KeyboardInterrupt in acquire, say
        if steps.gi_frame is not None:  # type: ignore[attr-defined]  # queued or about to be
            steps.throw(error)
        raise
    raise AssertionError("checkout went on after its wait")  # pragma: no cover


async def _wait_async(steps: Generator[Waiter, Any, Any], timeout: Optional[float]) -> Any:
    """Drive the checkout on the running loop: a future, set from any thread through
    call_soon_threadsafe, and a timer on this loop for the timeout."""
    loop = asyncio.get_running_loop()
    waiter = next(steps)
    future = loop.create_future()
    waiter.wake = (loop, future)
    try:
        steps.send(None)  # queued
    except StopIteration as done:  # pragma: no cover
        return done.value
    timer = None if not timeout else loop.call_later(timeout, _set_timed_out, future)
    try:
        # wait_timeout=0: granted while queueing, or not at all
        woken = False if timeout == 0 else await future
    except BaseException as error:  # cancelled: task.cancel(), wait_for, asyncio.timeout
        steps.throw(error)  # leaves the queue, handing on a grant that came meanwhile
        raise
    finally:
        if timer is not None:
            timer.cancel()
    try:
        steps.send(woken)
    except StopIteration as done:
        return done.value
    raise AssertionError("checkout went on after its wait")  # pragma: no cover


def _set_timed_out(future: Any) -> None:
    if not future.done():
        future.set_result(False)


# Every limit alive in this process, for the child of a fork.
_limits: weakref.WeakSet[Limit] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for limit in list(_limits):
        try:
            limit.after_fork()
        except ReferenceError:  # its connection is being collected
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
