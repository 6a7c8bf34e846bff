"""Reuse of idle sockets (pool_size): handed out again only while usable, never to two holders."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import os
import pickle
import select
import signal
import socket
import ssl
import threading
import time
import warnings

import pytest
from conftest import counted
from hypothesis import given
from hypothesis import strategies as st

WAIT_SECONDS = 5.0  # the longest any test waits for a server's doing to arrive


def _wait_readable(sock: socket.socket) -> None:
    """Wait until what the server did (a byte, a hang-up, a reset) has reached the socket."""
    readable, _, _ = select.select([sock], [], [], WAIT_SECONDS)
    assert readable, "the server's doing never arrived"


def test_sequential_blocks_reuse_one_socket(LazyConnection, echo_address, echo, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        with conn as first:
            assert echo(first, b"one") == b"one"
        with conn as second:
            assert second is first
            assert echo(second, b"two") == b"two"
        assert conn.stats() == counted(opened=1, reused=1, idle=1)
        assert conn.close_idle() == 1
        assert first.fileno() == -1


def test_the_default_keeps_nothing(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address)
        with conn as first:
            pass
        assert first.fileno() == -1
        with conn as second:
            assert second is not first
        assert conn.stats() == counted(opened=2)
        assert conn.close_idle() == 0


def test_nested_blocks_get_distinct_sockets_and_both_are_kept(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2)
        with conn as outer, conn as inner:
            assert outer is not inner
        assert conn.stats()["idle"] == 2
        with conn as again_outer, conn as again_inner:
            assert {again_outer, again_inner} == {outer, inner}
            assert again_outer is not again_inner
        assert conn.stats()["reused"] == 2
        conn.close_idle()


def test_the_newest_idle_socket_is_handed_out_first(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2)
        with conn as outer, conn:
            pass  # the inner socket is returned first, outer last: outer is the newest idle
        with conn as first:
            assert first is outer
        conn.close_idle()


def test_pool_size_bounds_what_is_kept(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2)
        with conn as a, conn as b, conn as c:
            pass
        assert conn.stats()["idle"] == 2
        assert a.fileno() == -1  # returned last, when two were already idle
        assert b.fileno() != -1 and c.fileno() != -1
        assert conn.close_idle() == 2


def test_a_body_that_raises_discards_its_socket(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        with pytest.raises(KeyboardInterrupt):
            with conn as sock:
                raise KeyboardInterrupt
        assert sock.fileno() == -1
        assert conn.stats()["idle"] == 0


def test_a_body_that_closes_its_socket_is_not_kept(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        with conn as sock:
            sock.close()
        assert conn.stats()["idle"] == 0
        with conn as fresh:
            assert fresh is not sock and fresh.fileno() != -1
        conn.close_idle()


@pytest.mark.parametrize("role", ["hangup", "reset"])
def test_sockets_the_server_closed_are_discarded_not_handed_out(
    LazyConnection, misbehaving, echo, role, no_leaks
):
    cycles = 200
    address = misbehaving(role)  # started outside: its pipes are not the test's descriptors
    with no_leaks():
        conn = LazyConnection(address, pool_size=1)
        for _ in range(cycles):
            with conn as sock:
                assert echo(sock, b"ping") == b"ping"  # any error fails the test
            _wait_readable(sock)
        assert conn.stats() == counted(opened=cycles, discarded=cycles - 1, idle=1)
        conn.close_idle()


def test_a_socket_with_bytes_nobody_asked_for_is_never_handed_out(
    LazyConnection, misbehaving, echo, no_leaks
):
    address = misbehaving("chatty")
    with no_leaks():
        conn = LazyConnection(address, pool_size=1)
        for _ in range(20):
            with conn as sock:
                assert echo(sock, b"ask") == b"ask"
            _wait_readable(sock)  # the unsolicited byte has arrived
            with conn as next_sock:
                assert next_sock is not sock
                assert sock.fileno() == -1
            conn.close_idle()
        assert conn.stats()["discarded"] == 20


@pytest.mark.parametrize(
    "expiry, wait", [({"idle_timeout": 0.05}, 0.1), ({"max_lifetime": 0.2}, 0.3)], ids=repr
)
def test_an_idle_socket_that_expired_is_discarded(
    LazyConnection, echo_address, expiry, wait, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1, **expiry)
        with conn as first:
            pass
        time.sleep(wait)
        with conn as second:
            assert second is not first and first.fileno() == -1
        assert conn.stats()["discarded"] == 1
        conn.close_idle()


def test_an_idle_socket_within_idle_timeout_is_reused(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1, idle_timeout=60.0)
        with conn as first:
            pass
        with conn as second:
            assert second is first
        conn.close_idle()


def test_a_socket_past_max_lifetime_in_use_is_closed_at_exit(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1, max_lifetime=0.05)
        with conn as sock:
            time.sleep(0.1)
        assert sock.fileno() == -1
        assert conn.stats() == counted(opened=1, discarded=1)


def test_max_lifetime_counts_from_the_connect_not_from_the_last_use(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1, max_lifetime=0.3)
        with conn as first:
            pass
        deadline = time.monotonic() + 0.5
        reused = 0
        while time.monotonic() < deadline:  # used again and again, but born once
            with conn as sock:
                reused += sock is first
            time.sleep(0.01)
        assert first.fileno() == -1 and 0 < reused
        conn.close_idle()


def test_threads_share_the_pool_without_holding_a_socket_twice(
    LazyConnection, echo_address, echo, no_leaks
):
    threads, cycles = 8, 60
    held: set[int] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            for cycle in range(cycles):
                with conn as sock:
                    with lock:
                        assert id(sock) not in held, "a socket handed to two holders"
                        held.add(id(sock))
                    payload = f"{number}:{cycle};".encode()
                    assert echo(sock, payload) == payload  # no reply meant for another
                    with lock:
                        held.discard(id(sock))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=4)
        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers)
        assert errors == []
        stats = conn.stats()
        assert stats["opened"] + stats["reused"] == threads * cycles
        assert stats["reused"] > 0 and stats["idle"] <= 4
        conn.close_idle()


def _child_checks(conn, in_use_at_fork, echo) -> int:
    """In the forked child: which check failed (0: none)."""
    if conn.stats()["idle"] != 0:
        return 2  # an inherited idle socket could still be handed out
    conn.__exit__(None, None, None)
    if conn.stats()["idle"] != 0 or in_use_at_fork.fileno() != -1:
        return 3  # the socket in use at the fork was kept, not closed
    with conn as sock:
        if conn.stats()["opened"] != 3 or echo(sock, b"child") != b"child":
            return 4
    return 0


def _forked(child) -> int:
    """Fork: the child runs child() and exits with what it returns (0: every check held),
    never returning into pytest; the parent gets the child's pid."""
    with warnings.catch_warnings():  # 3.12 warns when a threaded process forks
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = child()
        finally:
            os._exit(status)
    return pid


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("timed", [False, True], ids=["untimed", "timed"])
def test_a_forked_child_opens_its_own_and_leaves_the_parents_working(
    LazyConnection, echo_address, echo, timed, no_leaks
):
    timing = {"idle_timeout": 60.0, "max_lifetime": 60.0} if timed else {}
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2, **timing)
        with conn as idle_at_fork:
            pass
        in_use_at_fork = conn.__enter__()
        assert in_use_at_fork is idle_at_fork
        with conn as other:
            pass
        pid = _forked(lambda: _child_checks(conn, in_use_at_fork, echo))
        assert _exit_code(pid) == 0
        conn.__exit__(None, None, None)
        # The child closed its copies only: the parent's connections still work.
        with conn as first, conn as second:
            assert {first, second} == {in_use_at_fork, other}
            assert echo(first, b"one") == b"one" and echo(second, b"two") == b"two"
        conn.close_idle()


def test_async_with_reuses_and_hands_out_non_blocking(
    LazyConnection, echo_address, async_echo, no_leaks
):
    async def main() -> None:
        conn = LazyConnection(echo_address, pool_size=1)
        async with conn as first:
            assert await async_echo(first, b"one") == b"one"
        async with conn as second:
            assert second is first and second.gettimeout() == 0.0
            assert await async_echo(second, b"two") == b"two"
        assert conn.stats()["reused"] == 1
        conn.close_idle()

    with no_leaks():
        asyncio.run(main())


def test_a_socket_changes_mode_between_with_and_async_with(LazyConnection, echo_address, no_leaks):
    async def in_async_with(conn) -> socket.socket:
        async with conn as sock:
            assert sock.gettimeout() == 0.0
            return sock

    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1, timeout=5.0)
        with conn as first:
            assert first.gettimeout() == 5.0
        assert asyncio.run(in_async_with(conn)) is first
        with conn as again:
            assert again is first and again.gettimeout() == 5.0
        conn.close_idle()


def test_a_body_that_changes_the_timeout_does_not_pass_it_on(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        with conn as first:
            first.settimeout(0.5)
        with conn as second:
            assert second is first and second.gettimeout() == socket.getdefaulttimeout()
        conn.close_idle()


def test_tls_sockets_are_reused(LazyConnection, tls_address, trusting_context, echo, no_leaks):
    with no_leaks():
        conn = LazyConnection(tls_address, pool_size=1, ssl_context=trusting_context)
        with conn as first:
            pass  # no I/O: records the server sent after the handshake wait unread
        time.sleep(0.05)  # let them arrive: they carry no data and must not discard the socket
        with conn as second:
            assert second is first
            assert echo(second, b"tls") == b"tls"
        assert conn.stats() == counted(opened=1, reused=1, idle=1)
        conn.close_idle()


def test_a_tls_socket_with_decrypted_bytes_left_unread_is_not_handed_out(
    LazyConnection, tls_address, trusting_context, no_leaks
):
    with no_leaks():
        conn = LazyConnection(tls_address, pool_size=1, ssl_context=trusting_context)
        with conn as first:
            first.sendall(b"ab")
            assert first.recv(1) == b"a"  # the record is decrypted whole: b"b" waits in TLS
            assert first.pending() == 1
        with conn as second:
            assert second is not first and first.fileno() == -1
        conn.close_idle()


@pytest.mark.parametrize("role", ["hangup", "chatty"])
def test_a_dead_or_chatty_tls_socket_is_replaced(
    LazyConnection, misbehaving, trusting_context, echo, role, no_leaks
):
    address = misbehaving(role, tls=True)
    with no_leaks():
        conn = LazyConnection(address, pool_size=1, ssl_context=trusting_context)
        for _ in range(5):
            with conn as sock:
                assert echo(sock, b"tls") == b"tls"
            _wait_readable(sock)
            with conn as fresh:
                assert fresh is not sock and sock.fileno() == -1
                assert echo(fresh, b"again") == b"again"
            _wait_readable(fresh)
        assert conn.stats()["reused"] == 0
        conn.close_idle()


def test_an_object_collected_with_idle_sockets_closes_them_quietly(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():  # no ResourceWarning, every descriptor closed
        conn = LazyConnection(echo_address, pool_size=2)
        with conn as first, conn as second:
            pass
        del conn
        gc.collect()
        assert first.fileno() == -1 and second.fileno() == -1


def test_copies_and_pickles_carry_the_pool_settings_never_sockets(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=3, idle_timeout=2.0, max_lifetime=9.0)
        with conn:
            pass
        for twin in (copy.copy(conn), copy.deepcopy(conn), pickle.loads(pickle.dumps(conn))):
            assert type(twin) is type(conn)
            assert {
                key: twin.options[key] for key in ("pool_size", "idle_timeout", "max_lifetime")
            } == {
                "pool_size": 3,
                "idle_timeout": 2.0,
                "max_lifetime": 9.0,
            }
            assert twin.stats() == {
                "opened": 0,
                "reused": 0,
                "discarded": 0,
                "idle": 0,
                "in_use": 0,
                "waited": 0,
            }
        conn.close_idle()


def test_repr_shows_the_idle_count_when_pooling(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        assert "idle=0" in repr(conn)
        with conn:
            pass
        assert repr(conn).endswith("open=0 idle=1>")
        assert "idle" not in repr(LazyConnection(echo_address))
        conn.close_idle()


@pytest.mark.parametrize(
    "name, value, error, message",
    [
        ("pool_size", -1, ValueError, "pool_size must not be negative"),
        ("pool_size", True, TypeError, "pool_size must be an integer, not bool"),
        ("pool_size", 1.5, TypeError, "pool_size must be an integer, not float"),
        ("pool_size", "2", TypeError, "pool_size must be an integer, not str"),
        ("idle_timeout", 0, ValueError, "idle_timeout must be None or a finite number"),
        ("idle_timeout", -1.0, ValueError, "idle_timeout must be None or a finite number"),
        ("idle_timeout", float("nan"), ValueError, "idle_timeout must be None or a finite"),
        ("idle_timeout", float("inf"), ValueError, "idle_timeout must be None or a finite"),
        ("idle_timeout", "1", TypeError, "idle_timeout must be None or a number of seconds"),
        ("idle_timeout", True, TypeError, "idle_timeout must be None or a number of seconds"),
        ("max_lifetime", 0.0, ValueError, "max_lifetime must be None or a finite number"),
        ("max_lifetime", -5, ValueError, "max_lifetime must be None or a finite number"),
        ("max_lifetime", [], TypeError, "max_lifetime must be None or a number of seconds"),
        ("idle_timeout", 10**400, ValueError, "idle_timeout must be None or a finite number"),
        ("max_lifetime", 10**400, ValueError, "max_lifetime must be None or a finite number"),
    ],
)
def test_bad_pool_settings_are_refused_at_construction(
    LazyConnection, echo_address, name, value, error, message
):
    with pytest.raises(error, match=message):
        LazyConnection(echo_address, **{name: value})


def test_an_exit_in_another_thread_returns_the_socket_to_the_pool(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        sock = conn.__enter__()
        exiting = threading.Thread(target=conn.__exit__, args=(None, None, None))
        exiting.start()
        exiting.join(WAIT_SECONDS)
        assert conn.stats()["idle"] == 1 and conn.sock is None
        with conn as again:
            assert again is sock
        conn.close_idle()


def test_an_abandoned_generator_closes_its_socket_rather_than_keep_it(
    LazyConnection, echo_address, no_leaks
):
    async def main() -> None:
        conn = LazyConnection(echo_address, pool_size=1)

        async def generator():
            async with conn as sock:
                yield sock

        agen = generator()
        sock = await agen.__anext__()
        del agen  # abandoned mid-block: the loop closes it, in a task of its own
        gc.collect()  # at once on PyPy too
        for _ in range(10):
            await asyncio.sleep(0)
        assert sock.fileno() == -1 and conn.stats()["idle"] == 0

    with no_leaks():
        asyncio.run(main())


SECONDS = st.one_of(
    st.none(), st.floats(min_value=1e-3, max_value=1e6), st.integers(min_value=1, max_value=10**6)
)


@given(pool_size=st.integers(0, 64), idle_timeout=SECONDS, max_lifetime=SECONDS)
def test_good_pool_settings_read_back_as_given(
    LazyConnection, echo_address, pool_size, idle_timeout, max_lifetime
):
    conn = LazyConnection(
        echo_address, pool_size=pool_size, idle_timeout=idle_timeout, max_lifetime=max_lifetime
    )
    options = conn.options
    assert options["pool_size"] == pool_size
    assert options["idle_timeout"] == idle_timeout and options["max_lifetime"] == max_lifetime
    assert conn.stats() == counted()
    assert ("idle=0" in repr(conn)) == (pool_size > 0)


class _Fault(Exception):
    pass


FAULTS = ("clean", "raises", "interrupted", "closes", "leaves a reply unread")


def _block(conn, fault, echo):
    """One `with` whose body meets the fault."""
    try:
        with conn as sock:
            if fault == "leaves a reply unread":
                sock.sendall(b"unread")
                return
            assert echo(sock, b"ok") == b"ok"
            if fault == "raises":
                raise _Fault
            if fault == "interrupted":
                raise KeyboardInterrupt
            if fault == "closes":
                sock.close()
    except (_Fault, KeyboardInterrupt):
        pass


def test_nothing_leaks_over_a_matrix_of_servers_and_faults(
    LazyConnection, echo_address, misbehaving, echo, no_leaks
):
    servers = {"echo": echo_address, **{role: misbehaving(role) for role in ("hangup", "reset")}}
    with no_leaks():
        for role, address in servers.items():
            conn = LazyConnection(address, pool_size=2, idle_timeout=30.0, max_lifetime=60.0)
            for fault in FAULTS * 4:
                if role == "echo" or fault in ("clean", "closes"):
                    _block(conn, fault, echo)
                    for sock in [entry[0] for entry in conn._pool.idle]:
                        select.select([sock], [], [], 0.05)  # let a hang-up arrive
            stats = conn.stats()
            assert stats["opened"] + stats["reused"] >= len(FAULTS)
            conn.close_idle()


def test_a_socket_closed_while_a_file_of_it_is_open_is_not_kept(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2)
        with conn as sock:
            reader = sock.makefile("rb")
            sock.close()  # its descriptor stays open until the file closes too
        assert conn.stats()["idle"] == 0
        reader.close()


def test_a_socket_past_max_lifetime_counts_as_discarded_when_the_pool_is_full(
    LazyConnection, echo_address, no_leaks
):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1, max_lifetime=0.2)
        with conn as old:
            time.sleep(0.3)
            with conn:  # young: kept, and the pool is full
                pass
        assert old.fileno() == -1
        assert conn.stats() == counted(opened=2, discarded=1, idle=1)
        conn.close_idle()


def test_async_with_refuses_tls_even_with_a_socket_idle(
    LazyConnection, tls_address, trusting_context, no_leaks
):
    async def enter(conn):
        async with conn:
            pass

    with no_leaks():
        conn = LazyConnection(tls_address, pool_size=1, ssl_context=trusting_context)
        with conn:
            pass
        with pytest.raises(NotImplementedError, match="TLS is not supported with `async with`"):
            asyncio.run(enter(conn))
        assert conn.stats()["idle"] == 1
        conn.close_idle()


def test_an_interrupt_in_the_tls_check_closes_the_socket(
    LazyConnection, tls_address, trusting_context, monkeypatch, no_leaks
):
    armed = []

    def interrupted(sock, unusable):
        if armed:
            raise KeyboardInterrupt
        return True

    from lazyconnection import _connection

    monkeypatch.setattr(_connection, "tls_usable", interrupted)  # read at construction
    with no_leaks():
        conn = LazyConnection(tls_address, pool_size=1, ssl_context=trusting_context)
        with conn as sock:
            pass
        armed.append(True)
        with pytest.raises(KeyboardInterrupt):
            with conn:  # the check of the idle socket
                pass
        assert sock.fileno() == -1 and conn.stats()["idle"] == 0 and not conn.connections
        armed.clear()
        with pytest.raises(KeyboardInterrupt):
            with conn as again:
                armed.append(True)  # the check at the end of the block: on no stack either
        assert again.fileno() == -1 and conn.stats()["idle"] == 0 and not conn.connections


class _MemoryBioServer:
    """A TLS server on 127.0.0.1 that controls what it writes down to the byte: each
    connection gets `serve(tls, raw, flush)` once its handshake is done."""

    def __init__(self, pem, serve):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pem)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT_SECONDS)  # closing it would not wake a blocked accept()
        self.address = self.listener.getsockname()
        self.serve = serve
        self.threads = []
        self.accepting = threading.Thread(target=self._accept)
        self.accepting.start()

    def _accept(self):
        for _ in range(2):  # the connection under test and the one opened instead of it
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(raw,))
            thread.start()
            self.threads.append(thread)

    def _run(self, raw):
        with raw:
            raw.settimeout(WAIT_SECONDS)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_side=True)

            def flush(hold=0):
                data = outgoing.read()
                raw.sendall(data[: len(data) - hold])
                return data[len(data) - hold :]

            def step(operation):
                while True:
                    try:
                        return operation()
                    except ssl.SSLWantReadError:
                        flush()
                        data = raw.recv(65536)
                        if not data:
                            raise ConnectionAbortedError("the client closed") from None
                        incoming.write(data)

            try:
                step(tls.do_handshake)
                flush()
                self.serve(tls, raw, flush, step)
            except (OSError, ssl.SSLError):
                pass  # the client went: nothing more to serve

    def join(self):
        """Wait until every connection is served and closed: the client has closed its end."""
        for thread in list(self.threads):
            thread.join(WAIT_SECONDS)

    def close(self):
        self.listener.close()
        self.accepting.join(WAIT_SECONDS)
        self.join()


@pytest.fixture
def memory_bio_server(tls_pem):
    servers = []

    def start(serve):
        servers.append(_MemoryBioServer(str(tls_pem()), serve))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_tls_socket_with_part_of_an_unsolicited_record_is_not_handed_out(
    LazyConnection, memory_bio_server, trusting_context, no_leaks
):
    partial_sent, finish = threading.Event(), threading.Event()

    def serve(tls, raw, flush, step):
        tls.write(step(lambda: tls.read(1024)))
        flush()
        if partial_sent.is_set():  # the connection opened instead: quiet until closed
            step(lambda: tls.read(1024))
            return
        tls.write(b"!" * 100)  # nobody asked for it, and its last 5 bytes come late
        held = flush(hold=5)
        partial_sent.set()
        finish.wait(WAIT_SECONDS)
        raw.sendall(held)

    server = memory_bio_server(serve)
    with no_leaks():
        conn = LazyConnection(server.address, pool_size=1, ssl_context=trusting_context, timeout=5)
        with conn as first:
            first.sendall(b"ask")
            assert first.recv(3) == b"ask"
        assert partial_sent.wait(WAIT_SECONDS)
        _wait_readable(first)
        with conn as second:
            assert second is not first and first.fileno() == -1
            assert echo_tls(second, b"again") == b"again"
        finish.set()
        conn.close_idle()
        server.join()


def echo_tls(sock, payload):
    sock.sendall(payload)
    return sock.recv(len(payload))


def test_a_tls_socket_whose_body_ended_tls_is_not_kept(
    LazyConnection, memory_bio_server, trusting_context, no_leaks
):
    def serve(tls, raw, flush, step):
        try:
            step(lambda: tls.read(1024))  # b"": the client's close_notify
        except ssl.SSLZeroReturnError:
            pass
        try:
            tls.unwrap()  # answered, and the TCP connection kept, as STARTTLS peers do
        except ssl.SSLWantReadError:
            pass
        flush()
        raw.recv(1024)

    server = memory_bio_server(serve)
    with no_leaks():
        conn = LazyConnection(server.address, pool_size=1, ssl_context=trusting_context, timeout=5)
        with conn as sock:
            plain = sock.unwrap()  # the next user would write in the clear
        assert conn.stats()["idle"] == 0 and sock.fileno() == -1
        plain.close()
        server.join()


def test_a_pool_size_beyond_any_count_means_unlimited(LazyConnection, echo_address, no_leaks):
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2**80)
        with conn, conn:
            pass
        assert conn.options["pool_size"] == 2**80 and conn.stats()["idle"] == 2
        conn.close_idle()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_signals_during_the_liveness_check_discard_no_healthy_socket(
    LazyConnection, echo_address, no_leaks
):
    """A signal that interrupts the check's poll() (EINTR) says nothing about the socket."""
    signals = []
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=1)
        previous = signal.signal(signal.SIGALRM, lambda *_: signals.append(1))
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)  # as a sampling profiler does
        try:
            deadline = time.monotonic() + 2.0
            for _ in range(2_000_000):  # until enough signals came: the compiled twin is quick
                if len(signals) > 200 or time.monotonic() > deadline:
                    break
                with conn:
                    pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        stats = conn.stats()
        conn.close_idle()
    assert len(signals) > 100, "the timer hardly fired: the test tested nothing"
    assert (stats["opened"], stats["discarded"]) == (1, 0)


@pytest.mark.parametrize("mode", ["rb", "wb", "rwb"])
def test_a_socket_whose_body_left_a_file_open_is_not_kept(
    LazyConnection, echo_address, echo, mode, no_leaks
):
    """Its file would read, or write into, the next caller's exchange."""
    with no_leaks():
        conn = LazyConnection(echo_address, pool_size=2)
        with conn as first:
            left_open = first.makefile(mode)
        assert conn.stats()["idle"] == 0
        with conn as second:
            assert second is not first
            assert echo(second, b"for caller 2\n") == b"for caller 2\n"
        assert conn.stats()["idle"] == 1
        left_open.close()  # the descriptor lives until the file closes, as socket.close() says
        assert first.fileno() == -1
        conn.close_idle()


def _hold_a_block(conn, entered, release, with_a_file):
    with conn as sock:
        file = sock.makefile("rb") if with_a_file else None  # as an HTTP response keeps
        entered.set()
        release.wait(WAIT_SECONDS)
        if file is not None:
            file.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("with_a_file", [False, True], ids=["", "file-open"])
@pytest.mark.parametrize("pool_size", [0, 2])
def test_a_forked_child_closes_the_sockets_other_threads_held(
    LazyConnection, pool_size, with_a_file, no_leaks
):
    """The parent's other threads do not exist in the child: their blocks never end there,
    so the child's copies would keep those connections open for the peer."""
    with no_leaks(), socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(WAIT_SECONDS)
        conn = LazyConnection(listener.getsockname(), pool_size=pool_size)
        entered, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_a_block, args=(conn, entered, release, with_a_file))
        holder.start()
        assert entered.wait(WAIT_SECONDS)
        held_elsewhere, _ = listener.accept()
        with conn as mine:
            held_here, _ = listener.accept()
            to_child_read, to_child = os.pipe()

            def in_the_child():
                kept_mine = mine.fileno() != -1 and conn.connections == (mine,)
                os.read(to_child_read, 1)  # alive until the parent has checked for EOF
                return 0 if kept_mine else 2

            pid = _forked(in_the_child)
            os.close(to_child_read)
            try:
                release.set()
                holder.join(WAIT_SECONDS)
                conn.close_idle()  # where the holder's socket went if pooled
                held_elsewhere.settimeout(WAIT_SECONDS)
                # The holder's block ended in the parent: with the child alive, the peer sees
                # the end of that connection only if the child closed its copy.
                assert held_elsewhere.recv(1) == b""
                mine.sendall(b"x")  # the parent's own connection still works
                held_here.settimeout(WAIT_SECONDS)
                assert held_here.recv(1) == b"x"
            finally:
                os.write(to_child, b"x")
                os.close(to_child)
                status = _exit_code(pid)
        assert status == 0
        held_elsewhere.close()
        held_here.close()
        conn.close_idle()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_keeps_the_forking_threads_socket_in_a_context_another_thread_used(
    LazyConnection, echo_address, echo, no_leaks
):
    """Which thread a block belongs to is the thread that entered it, not the thread that
    first entered in its context."""
    with no_leaks():
        conn = LazyConnection(echo_address)
        context = contextvars.Context()

        def enter_once():
            with conn:
                pass

        elsewhere = threading.Thread(target=context.run, args=(enter_once,))
        elsewhere.start()
        elsewhere.join(WAIT_SECONDS)

        def fork_inside_a_block():
            with conn as mine:
                pid = _forked(lambda: 0 if echo(mine, b"child") == b"child" else 2)
                return _exit_code(pid), echo(mine, b"parent")

        assert context.run(fork_inside_a_block) == (0, b"parent")
