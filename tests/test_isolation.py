"""Each thread, asyncio task and greenlet keeps its own stack on one shared object."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import greenlet
import pytest

THREADS = 8
ROUNDS = 25


def test_threads_sharing_one_object_keep_their_own_sockets(LazyConnection, echo_address, echo):
    conn = LazyConnection(echo_address)
    barrier = threading.Barrier(THREADS, timeout=10)
    failures = []

    def worker(number):
        try:
            barrier.wait()
            for round in range(ROUNDS):
                with conn as outer:
                    with conn as inner:
                        assert conn.connections == (outer, inner)
                        assert echo(inner, b"%d-%d-inner" % (number, round)) == b"%d-%d-inner" % (
                            number,
                            round,
                        )
                    assert echo(outer, b"%d-%d-outer" % (number, round)) == b"%d-%d-outer" % (
                        number,
                        round,
                    )
                    assert conn.sock is outer
                assert conn.connections == ()
        except BaseException as error:  # report in the main thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def test_a_new_thread_starts_with_an_empty_stack(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    seen = []
    with conn:
        thread = threading.Thread(target=lambda: seen.append(conn.connections))
        thread.start()
        thread.join(timeout=10)
    assert seen == [()]


def test_asyncio_tasks_interleaving_inside_with_keep_their_own_sockets(
    LazyConnection, echo_address, echo
):
    conn = LazyConnection(echo_address)

    async def task(name, my_turn, their_turn):
        with conn as sock:
            for step in range(3):
                await my_turn.wait()
                my_turn.clear()
                assert conn.sock is sock
                assert conn.connections == (sock,)
                assert echo(sock, b"%s-%d" % (name, step)) == b"%s-%d" % (name, step)
                their_turn.set()
        return sock

    async def main():
        a_turn, b_turn = asyncio.Event(), asyncio.Event()
        a_turn.set()
        return await asyncio.wait_for(
            asyncio.gather(task(b"a", a_turn, b_turn), task(b"b", b_turn, a_turn)), 10
        )

    a_sock, b_sock = asyncio.run(main())
    assert a_sock is not b_sock
    assert a_sock.fileno() == b_sock.fileno() == -1
    assert conn.connections == ()


def test_a_task_started_inside_with_has_its_own_empty_stack(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)

    async def child():
        assert conn.connections == ()
        with pytest.raises(RuntimeError, match="no open connection"):
            conn.__exit__(None, None, None)
        with conn as own:
            assert conn.connections == (own,)
        return own

    async def main():
        with conn as parent_sock:
            own = await asyncio.create_task(child())
            assert conn.connections == (parent_sock,)
            assert parent_sock.fileno() != -1
            assert own.fileno() == -1
        return parent_sock

    assert asyncio.run(main()).fileno() == -1


def test_a_thread_given_a_copy_of_the_context_has_its_own_stack(LazyConnection, echo_address):
    conn = LazyConnection(echo_address)
    seen = []

    def worker():
        seen.append(conn.connections)
        with conn as own:
            seen.append(conn.connections == (own,))

    with conn as parent_sock:
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(worker,))
        thread.start()
        thread.join(timeout=10)
        assert conn.connections == (parent_sock,)
    assert seen == [(), True]


def test_greenlets_switching_inside_with_keep_their_own_sockets(LazyConnection, echo_address, echo):
    conn = LazyConnection(echo_address)
    socks = {}

    def run(name, other):
        with conn as sock:
            socks[name] = sock
            for step in range(3):
                assert conn.connections == (sock,)
                assert echo(sock, b"%s-%d" % (name, step)) == b"%s-%d" % (name, step)
                other().switch()
        return sock

    first = greenlet.greenlet(lambda: run(b"a", lambda: second))
    second = greenlet.greenlet(lambda: run(b"b", lambda: first))
    for _ in range(10):  # bounded: each switch advances one step
        if first.dead and second.dead:
            break
        (first if not first.dead else second).switch()
    assert first.dead and second.dead
    assert socks[b"a"] is not socks[b"b"]
    assert socks[b"a"].fileno() == socks[b"b"].fileno() == -1
    assert conn.connections == ()


def test_a_copy_of_the_context_run_in_the_same_thread_has_its_own_stack(
    LazyConnection, echo_address
):
    """A copy inherits the owner's caller but is not the owner: no thread or task tells
    them apart here, only the context itself."""
    conn = LazyConnection(echo_address)

    def inside_the_copy():
        assert conn.connections == ()
        with conn as inner:
            return conn.connections == (inner,)

    with conn as sock:
        assert contextvars.copy_context().run(inside_the_copy)
        assert conn.connections == (sock,)
    assert conn.connections == ()
