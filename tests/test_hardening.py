"""Hardening: exits from another context, dropped objects, reentrant hooks, interrupts in TLS."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import math
import pickle
import socket
import ssl
import subprocess
import sys
import threading
import warnings
import weakref

import pytest

import lazyconnection

# Exits from another context


def test_abandoned_async_generator_closes_its_socket(LazyConnection, echo_address, no_leaks):
    conn = LazyConnection(echo_address)
    seen = []

    async def numbers():
        async with conn as sock:
            seen.append(sock)
            for number in range(3):
                yield number

    async def main():
        async for _ in numbers():
            break  # the loop finalizes the generator later, in a new task
        for _ in range(5):
            await asyncio.sleep(0)

    def on_error(loop, context):
        seen.append(context)

    async def with_handler():
        asyncio.get_running_loop().set_exception_handler(on_error)
        await main()

    with no_leaks():
        asyncio.run(with_handler())
    (sock,) = seen  # no "Task exception was never retrieved" was reported
    assert sock.fileno() == -1
    assert conn.connections == ()


def test_generator_closed_from_another_thread_closes_its_socket(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)

    def lines():
        with conn as sock:
            yield sock

    generator = lines()
    sock = next(generator)
    errors = []

    def close():
        try:
            generator.close()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=close)
    thread.start()
    thread.join(timeout=10)
    assert errors == []
    assert sock.fileno() == -1
    assert conn.connections == ()


def test_enter_and_exit_in_separate_callbacks(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    entered = []

    def exit_into(done):
        try:
            done.set_result(conn.__exit__(None, None, None))
        except Exception as error:
            done.set_exception(error)

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: entered.append(conn.__enter__()))
        await asyncio.sleep(0.01)
        done = loop.create_future()
        loop.call_soon(exit_into, done)
        return await asyncio.wait_for(done, 10)

    assert asyncio.run(main()) is None
    assert entered[0].fileno() == -1


def test_a_task_cannot_close_its_creators_socket_even_after_a_block_of_its_own(
    LazyConnection, echo_address
):
    conn = LazyConnection(echo_address)

    async def child():
        with conn:
            pass
        with pytest.raises(RuntimeError, match="no open connection"):
            conn.__exit__(None, None, None)

    async def main():
        with conn as parent_sock:
            await asyncio.create_task(child())
            assert conn.connections == (parent_sock,) and parent_sock.fileno() != -1

    asyncio.run(main())


def test_exit_elsewhere_with_several_open_closes_nothing(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    opened = []
    ready, release = threading.Event(), threading.Event()

    def hold_two():
        with conn as first, conn as second:
            opened.extend((first, second))
            ready.set()
            release.wait(10)

    thread = threading.Thread(target=hold_two)
    thread.start()
    try:
        assert ready.wait(10)
        with pytest.raises(RuntimeError, match="ambiguous"):
            conn.__exit__(GeneratorExit, GeneratorExit(), None)
        assert [sock.fileno() != -1 for sock in opened] == [True, True]
    finally:
        release.set()
        thread.join(timeout=10)
    assert [sock.fileno() for sock in opened] == [-1, -1]


def test_threads_running_copies_of_the_context_never_disturb_the_owner(
    LazyConnection, echo_address
):
    conn = LazyConnection(echo_address)
    errors = []

    def look():
        try:
            for _ in range(20000):  # reading, as a copy that has never entered
                assert conn.connections == ()
            with conn as own:
                assert conn.connections == (own,)
        except BaseException as error:
            errors.append(error)

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two bytecodes, or nearly
    try:
        with conn as outer:
            context = contextvars.copy_context()
            threads = [threading.Thread(target=context.copy().run, args=(look,)) for _ in range(3)]
            for thread in threads:
                thread.start()
            for _ in range(20000):
                assert conn.connections == (outer,)
            for thread in threads:
                thread.join(timeout=30)
    finally:
        sys.setswitchinterval(switching)
    assert errors == []


# Dropped objects


def test_a_dropped_object_lets_its_socket_be_collected(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    conn.__enter__()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del conn
        gc.collect()
    assert [str(w.message).split(" ")[0] for w in caught] == ["unclosed"]


def test_a_finished_task_context_is_not_kept_alive(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    marker = contextvars.ContextVar("marker")

    class Held:
        pass

    async def task():
        marker.set(Held())
        with conn:
            pass
        return weakref.ref(marker.get())

    async def main():
        return await asyncio.create_task(task())

    held = asyncio.run(main())
    gc.collect()
    assert held() is None


def _run_in_tasks(body, count):
    async def main():
        for _ in range(count):
            await asyncio.create_task(_as_coroutine(body))

    asyncio.run(main())


async def _as_coroutine(body):
    body()


def _run_in_threads(body, count):
    for _ in range(count):
        thread = threading.Thread(target=body)
        thread.start()
        thread.join(10)


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="PyPy has no reference counting")
@pytest.mark.parametrize("run", [_run_in_tasks, _run_in_threads], ids=["tasks", "threads"])
def test_a_finished_context_is_freed_by_reference_counting(LazyConnection, echo_address, run):
    """What a task or thread kept in its context (a request, a session) is freed when it
    ends, not when the cyclic collector next runs: nothing of the library's refers to it."""
    conn = LazyConnection(echo_address)
    marker = contextvars.ContextVar("marker")
    values = []

    class Held:
        pass

    def body():
        held = Held()
        values.append(weakref.ref(held))
        marker.set(held)
        with conn:
            pass

    gc.collect()
    gc.disable()
    try:
        run(body, 20)
        alive = sum(value() is not None for value in values)
    finally:
        gc.enable()
    assert len(values) == 20
    assert alive == 0


@pytest.mark.parametrize("method", ["connect", "close"])
def test_a_socket_class_patched_after_use_is_honoured(
    LazyConnection, echo_address, monkeypatch, method
):
    conn = LazyConnection(echo_address)
    with conn:  # the kernel has now looked up both methods on socket.socket
        pass
    calls = []
    original = getattr(socket.socket, method)

    def recorded(self, *args):
        calls.append(method)
        return original(self, *args)

    monkeypatch.setattr(socket.socket, method, recorded)
    with conn:
        pass
    monkeypatch.undo()
    with conn:
        pass
    assert calls == [method]


def test_a_close_failing_after_a_failed_connect_leaves_both_errors(LazyConnection, refused_address):
    class Stubborn(socket.socket):
        def close(self):
            super().close()
            raise OSError("close failed")

    conn = LazyConnection(refused_address, socket_factory=Stubborn)
    with pytest.raises(OSError, match="close failed") as caught:
        conn.__enter__()
    assert isinstance(caught.value.__context__, ConnectionRefusedError)
    assert conn.connections == ()


# TLS, hooks, decorators


def test_interrupted_tls_handshake_closes_the_wrapped_socket(
    LazyConnection, tls_address, trusting_context, monkeypatch, no_leaks
):
    def interrupted(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ssl.SSLSocket, "do_handshake", interrupted)
    conn = LazyConnection(tls_address, ssl_context=trusting_context)
    with no_leaks():
        with pytest.raises(KeyboardInterrupt):
            conn.__enter__()
    assert conn.connections == ()


def test_a_hook_entering_the_same_object_keeps_its_socket(LazyConnection, echo_address):
    nested = []

    def hook(sock):
        if not nested:
            nested.append(None)  # the nested enter runs this hook too
            nested[0] = conn.__enter__()

    conn = LazyConnection(echo_address, on_connect=hook)
    with conn as outer:
        assert conn.connections == (nested[0], outer)
    assert outer.fileno() == -1
    assert conn.connections == (nested[0],)
    conn.__exit__(None, None, None)
    assert nested[0].fileno() == -1


def test_nested_pushes_from_a_hook_count_against_max_depth(LazyConnection, echo_address):
    made = []

    def hook(sock):
        made.append(sock)
        if len(made) == 1:
            conn.__enter__()

    conn = LazyConnection(echo_address, on_connect=hook, max_depth=1)
    with pytest.raises(RuntimeError, match="Already connected"):
        conn.__enter__()
    assert made[0].fileno() == -1
    assert conn.connections == (made[1],)
    conn.__exit__(None, None, None)


def test_a_coroutine_hook_is_refused_in_a_blocking_with(LazyConnection, echo_address, no_leaks):
    async def hook(sock):
        raise AssertionError("never run")

    conn = LazyConnection(echo_address, on_connect=hook)
    with no_leaks():
        with pytest.raises(TypeError, match="awaitable"):
            conn.__enter__()
    assert conn.connections == ()


@pytest.mark.parametrize("kind", ["generator", "async generator"])
def test_decorating_a_generator_function_is_refused(LazyConnection, echo_address, kind):
    conn = LazyConnection(echo_address)

    def lines():
        yield conn.sock

    async def async_lines():
        yield conn.sock

    with pytest.raises(TypeError, match="generator"):
        conn(lines if kind == "generator" else async_lines)


# Validation


@pytest.mark.parametrize(
    "args, kwargs, name",
    [
        ((("127.0.0.1", True),), {}, "port"),
        ((("127.0.0.1", 80),), {"max_depth": True}, "max_depth"),
        ((("127.0.0.1", 80),), {"retries": False}, "retries"),
        ((("127.0.0.1", 80), True), {}, "family"),
    ],
)
def test_bools_are_not_integers(LazyConnection, args, kwargs, name):
    with pytest.raises(TypeError, match=name):
        LazyConnection(*args, **kwargs)


@pytest.mark.parametrize("name", ["timeout", "backoff"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_seconds_must_be_finite(LazyConnection, name, value):
    with pytest.raises(ValueError, match=name):
        LazyConnection(("127.0.0.1", 80), **{name: value})


def test_a_huge_max_depth_is_unlimited(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, max_depth=2**63)
    assert conn.max_depth == 2**63
    with conn, conn, conn:
        assert len(conn.connections) == 3


# Copies and pickles


def test_pickles_name_the_public_class(LazyConnection, unix_path):
    data = pickle.dumps(LazyConnection(unix_path, socket.AF_UNIX, max_depth=3))
    assert b"_kernel" not in data and b"_connection_c" not in data
    code = (
        "import pickle, sys, lazyconnection as l;"
        "c = pickle.loads(sys.stdin.buffer.read());"
        "print(type(c).__name__, c.max_depth)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        input=data,
        capture_output=True,
        env={"LAZYCONNECTION_NO_EXTENSIONS": "1", "PATH": ""},
        timeout=60,
        check=True,
    )
    assert loaded.stdout.decode().split() == ["PyLazyConnection", "3"]


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_duplicates_keep_a_subclass_attributes(LazyConnection, echo_address, duplicate):
    twin = duplicate(_subclass(LazyConnection)(echo_address, label="db"))
    assert (type(twin).__name__, twin.label, twin.tag) == ("Labelled", "db", "t")
    assert twin.address == echo_address


_SUBCLASSES: dict[type, type] = {}


def _subclass(cls):
    """A subclass with a __dict__ attribute and a slot; module-level, so that it pickles."""
    if cls not in _SUBCLASSES:

        class Labelled(cls):
            __slots__ = ("tag", "__dict__")

            def __init__(self, address, label):
                super().__init__(address)
                self.label = label
                self.tag = "t"

        Labelled.__qualname__ = f"_SUBCLASSES_{cls.__name__}"
        globals()[Labelled.__qualname__] = Labelled
        _SUBCLASSES[cls] = Labelled
    return _SUBCLASSES[cls]


def test_public_classes_are_importable_under_their_names():
    assert lazyconnection.PyLazyConnection.__name__ == "PyLazyConnection"
    if lazyconnection.CLazyConnection is not None:
        assert lazyconnection.CLazyConnection.__name__ == "CLazyConnection"


@pytest.mark.parametrize("pool_size", [0, 2])
def test_an_exit_elsewhere_that_races_a_nested_enter_takes_nothing(
    LazyConnection, echo_address, pool_size
):
    """The other context's exit chose the owner's innermost socket; before it took it, the
    owner entered again. It must not take the newer socket (to close it, or to keep it idle
    while the owner uses it)."""
    from lazyconnection._registry import NO_OPEN_CONNECTION, stack_elsewhere

    conn = LazyConnection(echo_address, pool_size=pool_size)
    paused, resume, errors = threading.Event(), threading.Event(), []

    def tracer(frame, event, arg):
        # Every frame traced locally: Cython's line tracing (the coverage build) calls a
        # frame's tracer without checking it is there.
        if event == "return" and frame.f_code is stack_elsewhere.__code__:
            paused.set()  # chosen, not yet taken
            resume.wait(10)
        return tracer

    def exit_elsewhere():
        sys.settrace(tracer)
        try:
            conn.__exit__(None, None, None)
        except RuntimeError as error:
            errors.append(str(error))
        finally:
            sys.settrace(None)

    outer = conn.__enter__()
    other = threading.Thread(target=exit_elsewhere)
    other.start()
    try:
        assert paused.wait(10)
        with conn as inner:
            resume.set()
            other.join(10)
            assert conn.connections == (outer, inner) and inner.fileno() != -1
            assert conn.stats()["idle"] == 0
        assert errors == [NO_OPEN_CONNECTION]
    finally:
        resume.set()
        conn.__exit__(None, None, None)
        conn.close_idle()
