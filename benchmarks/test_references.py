"""Not a timing: the stand-ins and the recipe classes behave as the benchmarks claim."""

import asyncio
import contextvars
import socket

import pytest
import references


def test_stand_in_factory_returns_one_socket_whose_calls_do_nothing(stand_ins):
    sock = stand_ins.stand_in_factory(socket.AF_INET, socket.SOCK_STREAM, 0)
    assert sock is stand_ins.stand_in_factory()
    assert sock.connect(("127.0.0.1", 9)) is None
    assert sock.close() is None
    assert not isinstance(sock, socket.socket)


def test_empty_context_manager_does_nothing(stand_ins):
    manager = stand_ins.EmptyContextManager()
    with manager as entered:
        assert entered is None
    with pytest.raises(KeyError):
        with manager:
            raise KeyError


def test_context_variable_setter_sets_its_variable_in_the_running_context_only(stand_ins):
    setter = stand_ins.ContextVariableSetter()

    def enter() -> None:
        with setter as entered:
            assert entered is None

    context = contextvars.Context()
    context.run(enter)
    assert context[stand_ins.VARIABLE] is setter
    assert stand_ins.VARIABLE not in contextvars.copy_context()


def test_empty_async_context_manager_does_nothing(stand_ins):
    manager = stand_ins.EmptyAsyncContextManager()

    async def enter_and_raise():
        async with manager as entered:
            assert entered is None
        async with manager:
            raise KeyError

    with pytest.raises(KeyError):
        asyncio.run(enter_and_raise())


def test_lazyconnection_uses_the_stand_in(stand_ins, implementation):
    _, cls = implementation
    with cls(("127.0.0.1", 9), socket_factory=stand_ins.stand_in_factory) as sock:
        assert sock is stand_ins.stand_in_factory()


def test_recipe_stack_nests_real_sockets(tcp_address):
    conn = references.RecipeStackLazyConnection(tcp_address)
    with conn as outer, conn as inner:
        assert outer is not inner
        assert conn.connections == [outer, inner]
    assert outer.fileno() == inner.fileno() == -1


def test_recipe_thread_local_refuses_to_nest_and_ignores_family(tcp_address):
    conn = references.RecipeThreadLocalLazyConnection(tcp_address, family=socket.AF_INET6)
    assert conn.family == socket.AF_INET  # the copied bug, kept on purpose
    with conn as sock:
        assert sock.getpeername() == tcp_address
        with pytest.raises(RuntimeError, match="Already connected"):
            conn.__enter__()
    assert sock.fileno() == -1


def test_recipe_stack_uses_the_stand_in_when_patched(stand_ins, monkeypatch):
    monkeypatch.setattr(references, "socket", stand_ins.stand_in_factory)
    with references.RecipeStackLazyConnection(("127.0.0.1", 9)) as sock:
        assert sock is stand_ins.stand_in_factory()


def test_stand_in_event_loop_connects_at_once(stand_ins):
    loop = references.StandInEventLoop()
    try:
        sock = stand_ins.stand_in_factory()
        assert sock.setblocking(False) is None
        assert loop.run_until_complete(loop.sock_connect(sock, ("127.0.0.1", 9))) is None
    finally:
        loop.close()


def test_hand_written_async_pool_reuses_a_live_socket_and_drops_a_closed_one(
    echo_address, tcp_address
):
    async def twice(address):
        pool = references.HandWrittenAsyncPool(address)
        async with pool as first:
            pass
        await asyncio.sleep(0.05)  # the sink server has closed its end by now
        async with pool as second:
            assert pool.in_use == [second]
        assert pool.idle == [second]
        pool.close_idle()
        return first, second

    first, second = asyncio.run(twice(echo_address))
    assert first is second  # held open by the echo server: reused
    first, second = asyncio.run(twice(tcp_address))
    assert first is not second and first.fileno() == -1  # closed by the peer: dropped
