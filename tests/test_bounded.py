"""max_connections and wait_timeout: the limit holds, waiters are served in order, and no way
out of a wait (a timeout, an interrupt, a cancellation, a failed connect) leaks room."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import copy
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest
from conftest import open_fds

import lazyconnection

WAIT_SECONDS = 10.0  # the longest any test waits for a thread or task it started


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.001)


@contextlib.contextmanager
def _held_in_a_thread(conn):
    """conn entered in a thread of its own, held until the block ends or the event it gives
    is set."""
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with conn:
            held.set()
            release.wait(WAIT_SECONDS)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(WAIT_SECONDS)
    try:
        yield release
    finally:
        release.set()
        thread.join(WAIT_SECONDS)


@pytest.fixture
def room_left():
    """`room_left(conn, n)`: n nested blocks open at once in a new thread without waiting."""

    def check(conn, count: int) -> None:
        failures: list = []

        def nested() -> None:
            opened = []
            try:
                for _ in range(count):
                    started = time.monotonic()
                    opened.append(conn.__enter__())
                    assert time.monotonic() - started < 2.0, "a nested enter waited"
            except BaseException as error:
                failures.append(error)
            finally:
                for _ in opened:
                    conn.__exit__(None, None, None)

        thread = threading.Thread(target=nested)
        thread.start()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive(), "a nested enter hung: room was leaked"
        assert failures == []
        assert conn.stats()["in_use"] == 0
        conn.close_idle()

    return check


class _Counted:
    """A socket_factory whose sockets count themselves while open: the most open at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        counter = self

        class Socket(socket.socket):
            __slots__ = ("_counted",)

            def __init__(self, *args) -> None:
                super().__init__(*args)
                with counter.lock:
                    counter.open += 1
                    counter.most = max(counter.most, counter.open)
                self._counted = True

            def close(self) -> None:
                if getattr(self, "_counted", False):
                    self._counted = False
                    with counter.lock:
                        counter.open -= 1
                super().close()

        self.Socket = Socket

    def __call__(self, *args):
        return self.Socket(*args)


class _FdSampler:
    """A thread counting this process's descriptors above a baseline until stopped."""

    def __init__(self) -> None:
        self.base = open_fds()
        self.most = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.running:
            self.most = max(self.most, open_fds() - self.base)
            time.sleep(0.0005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join(WAIT_SECONDS)


# Whether stats() stays exact when threads switch between any two bytecodes: the pure class
# counts with `+=`, which CPython before 3.11 may interrupt between its read and its write.
EXACT_COUNTS_UNDER_THREADS = {
    "CLazyConnection": True,
    "PyLazyConnection": sys.implementation.name == "cpython" and sys.version_info >= (3, 11),
}


@pytest.fixture
def tiny_switch_interval():
    if sys.gettrace() is not None:
        # The coverage session's build traces the compiled kernel line by line, running
        # Python code between its lines: threads then switch inside it. Every other session
        # runs these tests.
        pytest.skip("under a tracer threads switch inside the compiled kernel")
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two bytecodes, or nearly
    yield
    sys.setswitchinterval(switching)


# The limit holds


@pytest.mark.parametrize("pool_size", [0, 2, 4])
def test_the_limit_holds_under_16_threads(
    LazyConnection, echo_address, echo, no_leaks, tiny_switch_interval, pool_size
):
    counted = _Counted()
    errors: list = []
    with no_leaks():
        conn = LazyConnection(
            echo_address, max_connections=4, pool_size=pool_size, socket_factory=counted
        )

        def work(worker: int) -> None:
            try:
                for round in range(25):
                    with conn as sock:
                        assert echo(sock, b"%d.%d" % (worker, round)) == b"%d.%d" % (worker, round)
            except BaseException as error:
                errors.append(error)

        with _FdSampler() as sampler:
            threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert counted.most <= 4
        assert sampler.most <= 4 + 1  # the sampler's own listdir holds one
        stats = conn.stats()
        assert stats["in_use"] == 0
        if EXACT_COUNTS_UNDER_THREADS[LazyConnection.__name__]:
            assert stats["opened"] + stats["reused"] == 16 * 25
        assert stats["idle"] <= pool_size
        conn.close_idle()


@pytest.mark.parametrize("pool_size", [0, 4])
def test_the_limit_holds_under_64_tasks(
    LazyConnection, echo_address, async_echo, no_leaks, tiny_switch_interval, pool_size
):
    counted = _Counted()
    with no_leaks():
        conn = LazyConnection(
            echo_address, max_connections=4, pool_size=pool_size, socket_factory=counted
        )

        async def work(worker: int) -> None:
            for round in range(10):
                async with conn as sock:
                    payload = b"%d.%d" % (worker, round)
                    assert await async_echo(sock, payload) == payload

        async def main() -> int:
            base = open_fds()
            most = 0

            async def sample() -> None:
                nonlocal most
                while True:
                    most = max(most, open_fds() - base)
                    await asyncio.sleep(0)

            sampler = asyncio.ensure_future(sample())
            await asyncio.wait_for(asyncio.gather(*(work(n) for n in range(64))), 60)
            sampler.cancel()
            return most

        most = asyncio.run(main())
        assert counted.most <= 4
        assert most <= 4 + 1
        stats = conn.stats()
        assert stats["in_use"] == 0 and stats["waited"] > 0
        assert stats["opened"] + stats["reused"] == 64 * 10
        conn.close_idle()


def test_idle_sockets_count_against_the_limit(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=2, pool_size=1, wait_timeout=0.05)
        base = open_fds()
        with conn:
            with conn:
                pass  # kept idle: two open, one in use
            assert conn.stats()["idle"] == 1
            result: list = []

            def other() -> None:
                with conn as reused:  # the idle one: no third socket
                    result.append(reused)
                    try:
                        with conn:  # two open, neither idle: it waits, and times out
                            result.append("opened a third")
                    except lazyconnection.PoolTimeout:
                        result.append("timed out")

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(WAIT_SECONDS)
            assert result[1:] == ["timed out"]
            assert open_fds() - base <= 2
        assert conn.stats()["opened"] == 2
        conn.close_idle()


def test_close_idle_frees_room(LazyConnection, echo_address, no_leaks, room_left):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=1, wait_timeout=0)
        with conn:
            pass
        assert conn.stats()["idle"] == 1
        assert conn.close_idle() == 1
        with conn:
            pass
        assert conn.stats()["opened"] == 2
        conn.close_idle()
        room_left(conn, 1)
        conn.close_idle()


# Order, timeouts and the self-deadlock guard


def _queue_in_threads(conn, count: int, order: list) -> list:
    """Start `count` threads, each queued before the next starts; each records its number
    inside its block."""
    threads = []
    for number in range(count):
        waited = conn.stats()["waited"]

        def wait(number: int = number) -> None:
            with conn:
                order.append(number)

        thread = threading.Thread(target=wait)
        thread.start()
        threads.append(thread)
        _wait_until(lambda w=waited: conn.stats()["waited"] > w, f"waiter {number} queued")
    return threads


@pytest.mark.parametrize("pool_size", [0, 1])
def test_thread_waiters_are_served_in_the_order_they_came(
    LazyConnection, echo_address, no_leaks, pool_size, room_left
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=pool_size)
        order: list = []
        with conn:
            threads = _queue_in_threads(conn, 8, order)
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert order == list(range(8))
        assert conn.stats()["waited"] == 8
        room_left(conn, 1)
        conn.close_idle()


@pytest.mark.parametrize("pool_size", [0, 1])
def test_task_waiters_are_served_in_the_order_they_came(
    LazyConnection, echo_address, no_leaks, pool_size, room_left
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=pool_size)
        order: list = []

        async def wait(number: int) -> None:
            async with conn:
                order.append(number)
                await asyncio.sleep(0)

        async def main() -> None:
            tasks = []
            async with conn:
                for number in range(8):
                    tasks.append(asyncio.ensure_future(wait(number)))
                    await asyncio.sleep(0)  # queued, in this order
                assert conn.stats()["waited"] == 8
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT_SECONDS)

        asyncio.run(main())
        assert order == list(range(8))
        room_left(conn, 1)
        conn.close_idle()


def test_a_new_caller_queues_behind_waiters(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=1)
        order: list = []
        with conn:
            threads = _queue_in_threads(conn, 3, order)
        with conn:  # began after them: served after them
            order.append("late")
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert order == [0, 1, 2, "late"]
        conn.close_idle()


@pytest.mark.parametrize("wait_timeout", [0, 0.2])
def test_a_timeout_raises_pool_timeout_and_leaks_nothing(
    LazyConnection, echo_address, entered, no_leaks, room_left, wait_timeout
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=2, wait_timeout=wait_timeout)
        with _held_in_a_thread(conn), _held_in_a_thread(conn):
            started = time.monotonic()
            with pytest.raises(lazyconnection.PoolTimeout) as raised:
                entered(conn)
            waited = time.monotonic() - started
        assert isinstance(raised.value, TimeoutError)
        assert "max_connections=2" in str(raised.value) and "wait_timeout" in str(raised.value)
        assert wait_timeout <= waited < wait_timeout + 2.0
        assert conn.stats()["waited"] == 1
        room_left(conn, 2)


def test_room_coming_as_the_wait_times_out_is_taken_or_left_whole(
    LazyConnection, echo_address, no_leaks, room_left
):
    """The holder's exit and the timeout race: the waiter gets the socket or PoolTimeout,
    and either way no room is lost."""
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=1, wait_timeout=0.005)
        outcomes = set()
        for round in range(60):
            held = threading.Event()

            def hold(held=held, delay=0.003 + round * 0.0001) -> None:
                with conn:
                    held.set()
                    time.sleep(delay)

            thread = threading.Thread(target=hold)
            thread.start()
            held.wait(WAIT_SECONDS)
            try:
                with conn as sock:
                    assert sock.fileno() != -1
                outcomes.add("socket")
            except lazyconnection.PoolTimeout:
                outcomes.add("timeout")
            thread.join(WAIT_SECONDS)
            room_left(conn, 1)
        assert outcomes <= {"socket", "timeout"}
        conn.close_idle()


def test_pool_timeout_is_exported():
    assert lazyconnection.PoolTimeout.__module__ == "lazyconnection"
    assert issubclass(lazyconnection.PoolTimeout, TimeoutError)
    assert "PoolTimeout" in lazyconnection.__all__


@pytest.mark.parametrize("pool_size", [0, 2])
def test_a_caller_holding_the_limit_itself_is_refused_at_once(
    LazyConnection, echo_address, no_leaks, pool_size, room_left
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=2, pool_size=pool_size)
        failures: list = []

        def nested() -> None:
            try:
                with conn, conn:
                    with conn:  # no wait_timeout: it would wait forever for itself
                        pass
            except RuntimeError as error:
                failures.append(error)

        thread = threading.Thread(target=nested)
        thread.start()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive(), "waited for itself"
        assert len(failures) == 1 and "max_connections=2" in str(failures[0])

        async def nested_async() -> None:
            async with conn, conn:
                async with conn:
                    pass

        with pytest.raises(RuntimeError, match="max_connections=2"):
            asyncio.run(asyncio.wait_for(nested_async(), WAIT_SECONDS))
        assert conn.stats()["waited"] == 0
        room_left(conn, 2)
        conn.close_idle()


# Across threads and event loops


def test_a_thread_returning_a_socket_wakes_an_asyncio_waiter(
    LazyConnection, echo_address, no_leaks, room_left
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, wait_timeout=WAIT_SECONDS)

        async def main() -> bool:
            async with conn:
                return True

        with _held_in_a_thread(conn) as release:
            threading.Timer(0.2, release.set).start()
            assert asyncio.run(main())
        assert conn.stats()["waited"] == 1
        room_left(conn, 1)


@pytest.mark.parametrize("waiter_side", ["thread", "another loop"])
def test_a_task_returning_a_socket_wakes_a_waiter_in_another_thread(
    LazyConnection, echo_address, no_leaks, room_left, waiter_side
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, wait_timeout=WAIT_SECONDS)
        got: list = []

        def wait_in_thread() -> None:
            if waiter_side == "thread":
                with conn:
                    got.append(True)
                return

            async def waiting() -> None:
                async with conn:
                    got.append(True)

            asyncio.run(waiting())

        async def main() -> None:
            async with conn:
                waited = conn.stats()["waited"]
                thread = threading.Thread(target=wait_in_thread)
                thread.start()
                while conn.stats()["waited"] == waited:
                    await asyncio.sleep(0.001)
            await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT_SECONDS)

        asyncio.run(asyncio.wait_for(main(), WAIT_SECONDS))
        assert got == [True]
        room_left(conn, 1)


def test_the_loop_runs_other_tasks_while_one_waits(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1)

        async def main() -> int:
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0.01)

            async def waiter() -> None:
                async with conn:
                    pass

            running = asyncio.ensure_future(ticker())
            async with conn:
                waiting = asyncio.ensure_future(waiter())
                await asyncio.sleep(0.3)
                assert not waiting.done()
            await asyncio.wait_for(waiting, WAIT_SECONDS)
            stop.set()
            await running
            return ticks

        assert asyncio.run(main()) >= 10


# Cancellation, interrupts and failed connects


@pytest.mark.parametrize("how", ["cancel", "wait_for", "timeout"])
def test_a_cancelled_waiter_leaves_no_reservation(
    LazyConnection, echo_address, no_leaks, room_left, how
):
    if how == "timeout" and not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout is new in 3.11")
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=2)

        async def enter() -> None:
            async with conn:
                pass

        async def main() -> None:
            async with conn, conn:
                if how == "cancel":
                    task = asyncio.ensure_future(enter())
                    await asyncio.sleep(0.05)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                elif how == "wait_for":
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.ensure_future(enter()), 0.05)
                else:
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.05):
                            await asyncio.ensure_future(enter())
                assert conn._bound.waiters == type(conn._bound.waiters)()

        asyncio.run(asyncio.wait_for(main(), WAIT_SECONDS))
        room_left(conn, 2)


@pytest.mark.parametrize("pool_size", [0, 1])
def test_a_waiter_cancelled_as_it_is_granted_hands_on_its_grant(
    LazyConnection, echo_address, no_leaks, room_left, pool_size
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=pool_size)
        served: list = []

        async def enter(name: str) -> None:
            async with conn:
                served.append(name)

        async def main() -> None:
            first = second = None
            async with conn:
                first = asyncio.ensure_future(enter("first"))
                await asyncio.sleep(0)
                second = asyncio.ensure_future(enter("second"))
                await asyncio.sleep(0)
                assert conn.stats()["waited"] == 2
            # The exit granted the first its room (or idle socket); it is cancelled before
            # it runs to take it.
            first.cancel()
            await asyncio.wait_for(second, WAIT_SECONDS)
            with pytest.raises(asyncio.CancelledError):
                await first

        asyncio.run(asyncio.wait_for(main(), WAIT_SECONDS))
        assert served == ["second"]
        room_left(conn, 1)
        conn.close_idle()


def test_a_loop_closed_with_a_waiter_queued_passes_its_grant_on(
    LazyConnection, echo_address, no_leaks, room_left
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1)

        async def enter() -> None:
            async with conn:
                pass

        with _held_in_a_thread(conn):
            loop = asyncio.new_event_loop()
            task = loop.create_task(enter())
            loop.run_until_complete(asyncio.sleep(0.05))  # the task is queued
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Task was destroyed but it is pending"
                loop.close()
                del task
        room_left(conn, 1)


def test_an_interrupt_while_waiting_leaves_no_reservation(
    LazyConnection, echo_address, no_leaks, room_left
):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main() reaches the main thread only")
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1)
        with _held_in_a_thread(conn):
            waited = conn.stats()["waited"]

            def interrupt() -> None:
                _wait_until(lambda: conn.stats()["waited"] > waited, "the main thread waits")
                _thread.interrupt_main()

            threading.Thread(target=interrupt).start()
            with pytest.raises(KeyboardInterrupt):
                with conn:
                    pass
        room_left(conn, 1)


@pytest.mark.parametrize("pool_size", [0, 1])
def test_interrupts_as_room_comes_leave_no_reservation(
    LazyConnection, echo_address, no_leaks, room_left, pool_size
):
    """The holder's exit and the interrupt race: whichever wins, the room is not lost."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main() reaches the main thread only")
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=pool_size)
        for round in range(30):
            held = threading.Event()
            waited = conn.stats()["waited"]

            def hold_then_race(held=held, waited=waited, delay=round * 0.00002) -> None:
                with conn:
                    held.set()
                    _wait_until(lambda: conn.stats()["waited"] > waited, "the main thread waits")
                    time.sleep(delay)
                _thread.interrupt_main()

            thread = threading.Thread(target=hold_then_race)
            thread.start()
            held.wait(WAIT_SECONDS)
            try:
                try:
                    with conn:
                        time.sleep(0.5)  # the interrupt lands here, if not in the wait
                except KeyboardInterrupt:
                    pass
            except KeyboardInterrupt:  # pragma: no cover - landed in the exit
                pass
            thread.join(WAIT_SECONDS)
            room_left(conn, 1)
        conn.close_idle()


def test_a_refused_connect_frees_its_room(LazyConnection, refused_address, entered, no_leaks):
    with no_leaks():
        conn = LazyConnection(refused_address, max_connections=1, wait_timeout=0)
        for _ in range(3):  # PoolTimeout instead, if the first had kept its room
            with pytest.raises(ConnectionRefusedError):
                entered(conn)
        assert conn.stats()["in_use"] == 0


def test_a_failed_hook_frees_its_room(LazyConnection, echo_address, entered, no_leaks):
    def refuse(sock) -> None:
        raise ValueError("no")

    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, wait_timeout=0, on_connect=refuse)
        for _ in range(3):
            with pytest.raises(ValueError, match="no"):
                entered(conn)


def test_a_body_that_raises_frees_its_room(LazyConnection, echo_address, entered, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1, pool_size=1, wait_timeout=0)
        for _ in range(3):
            with pytest.raises(ZeroDivisionError):
                entered(conn, lambda sock: 1 / 0)
        assert conn.stats()["idle"] == 0


def test_a_dead_idle_socket_frees_its_room(LazyConnection, misbehaving, entered, no_leaks, echo):
    address = misbehaving("hangup")  # started outside: its process's pipes stay open
    with no_leaks():
        conn = LazyConnection(address, max_connections=1, pool_size=1, wait_timeout=0)
        with conn as sock:
            echo(sock, b"x")  # then the server hangs up
            assert not sock.recv(1)
        entered(conn, lambda sock: None)  # not PoolTimeout: the dead one's room is free
        assert conn.stats()["discarded"] == 1 and conn.stats()["opened"] == 2
        conn.close_idle()


# Fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_in_a_forked_child_other_threads_sockets_do_not_count(
    LazyConnection, echo_address, echo, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=2, wait_timeout=0)
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with conn as sock:
                held.set()
                release.wait(WAIT_SECONDS)
                assert echo(sock, b"parent") == b"parent"

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(WAIT_SECONDS)
        with conn:  # the forking thread's own: it still counts in the child
            with warnings.catch_warnings():  # 3.12 warns when a threaded process forks
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    with conn:  # room: the other thread's socket does not count here
                        try:
                            with conn:  # but this thread's two do
                                code = 2
                        except RuntimeError:
                            code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
        release.set()
        thread.join(WAIT_SECONDS)
        assert os.waitstatus_to_exitcode(status) == 0


# gevent and eventlet: thread waits become greenlet waits once threading is patched


GREEN_SCRIPT = """
import sys, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # eventlet says it is in bugfix mode
if {framework!r} == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn, sleep = gevent.spawn, gevent.sleep
    def join_all(greenlets, timeout):
        gevent.joinall(greenlets, timeout=timeout, raise_error=True)
    def failure(greenlet):
        greenlet.join(15)
        return greenlet.exception
else:
    import eventlet
    eventlet.monkey_patch()
    spawn, sleep = eventlet.spawn, eventlet.sleep
    def join_all(greenlets, timeout):
        with eventlet.Timeout(timeout):
            for greenlet in greenlets:
                greenlet.wait()
    def failure(greenlet):
        try:
            with eventlet.Timeout(15):
                greenlet.wait()
        except Exception as error:
            return error
sys.path.insert(0, {tests!r})
import lazyconnection
from echo_server import serving

cls = getattr(lazyconnection, {cls!r})
with serving("echo", "tcp") as address:
    conn = cls(address, max_connections=2, pool_size={pool_size}, wait_timeout=5)
    live = [0, 0]

    def work(n):
        for _ in range(10):
            with conn as sock:
                live[0] += 1
                live[1] = max(live)
                sock.sendall(b"x")
                assert sock.recv(1) == b"x"
                sleep(0.001)
                live[0] -= 1

    join_all([spawn(work, n) for n in range(16)], 30)
    stats = conn.stats()
    assert live[1] == 2, live
    assert stats["in_use"] == 0 and stats["waited"] > 0, stats
    with conn:
        with conn:
            def late():
                with conn:
                    pass
            error = failure(spawn(late))
            assert isinstance(error, lazyconnection.PoolTimeout), error
    conn.close_idle()
print("ok")
"""


@pytest.mark.parametrize("framework", ["gevent", "eventlet"])
@pytest.mark.parametrize("pool_size", [0, 2])
def test_greenlets_wait_when_threading_is_patched(LazyConnection, pool_size, framework):
    pytest.importorskip(framework)
    script = GREEN_SCRIPT.format(
        framework=framework,
        tests=os.path.dirname(__file__),
        cls=LazyConnection.__name__,
        pool_size=pool_size,
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


# stats, copies, options, repr and bad values


def test_stats_count_in_use_and_waits(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, max_connections=1)
        assert conn.stats()["in_use"] == 0 and conn.stats()["waited"] == 0
        with conn:
            assert conn.stats()["in_use"] == 1
            threads = _queue_in_threads(conn, 2, [])
            assert conn.stats()["waited"] == 2
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert conn.stats()["in_use"] == 0
        plain = LazyConnection(echo_address)
        with plain, plain:
            assert plain.stats()["in_use"] == 2 and plain.stats()["waited"] == 0


def test_copies_pickles_options_and_repr_keep_both_settings(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, max_connections=3, wait_timeout=1.5, pool_size=2)
    assert conn.options["max_connections"] == 3
    assert conn.options["wait_timeout"] == 1.5
    for twin in (copy.copy(conn), copy.deepcopy(conn), pickle.loads(pickle.dumps(conn))):
        assert twin.options == conn.options
        assert twin._bound is not conn._bound  # its own limit
    assert "max_connections=3" in repr(conn) and "wait_timeout=1.5" in repr(conn)
    plain = LazyConnection(echo_address)
    assert plain.options["max_connections"] is None and plain.options["wait_timeout"] is None
    assert "max_connections" not in repr(plain)


@pytest.mark.parametrize(
    "options, error, name",
    [
        ({"max_connections": True}, TypeError, "max_connections"),
        ({"max_connections": 1.0}, TypeError, "max_connections"),
        ({"max_connections": "4"}, TypeError, "max_connections"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": -1}, ValueError, "max_connections"),
        ({"max_connections": 2, "wait_timeout": -0.1}, ValueError, "wait_timeout"),
        ({"max_connections": 2, "wait_timeout": float("nan")}, ValueError, "wait_timeout"),
        ({"max_connections": 2, "wait_timeout": float("inf")}, ValueError, "wait_timeout"),
        ({"max_connections": 2, "wait_timeout": 10**400}, ValueError, "wait_timeout"),
        ({"max_connections": 2, "wait_timeout": 1e300}, ValueError, "wait_timeout"),
        ({"max_connections": 2, "wait_timeout": True}, TypeError, "wait_timeout"),
        ({"max_connections": 2, "wait_timeout": "1"}, TypeError, "wait_timeout"),
        ({"wait_timeout": 1.0}, ValueError, "wait_timeout"),
        ({"wait_timeout": 0}, ValueError, "wait_timeout"),
        ({"max_connections": 2, "pool_size": 3}, ValueError, "pool_size"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(
    LazyConnection, echo_address, options, error, name
):
    with pytest.raises(error, match=name):
        LazyConnection(echo_address, **options)


def test_good_values_are_kept(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, max_connections=2, pool_size=2, wait_timeout=0)
    assert conn.options["wait_timeout"] == 0.0
    huge = LazyConnection(echo_address, max_connections=10**30)
    assert huge.options["max_connections"] == 10**30
    with huge, huge:
        pass
