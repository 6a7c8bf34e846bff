"""Fixtures shared by the test suite: both implementations, loopback servers, leak checks."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import socket
import ssl
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from echo_server import serving

import lazyconnection

PURE_PYTHON_REQUESTED = bool(os.environ.get("LAZYCONNECTION_NO_EXTENSIONS"))
COMPILED_EXPECTED = platform.python_implementation() == "CPython" and not PURE_PYTHON_REQUESTED


def _implementations() -> list[Any]:
    params = [pytest.param("pure-python", id="pure-python")]
    if COMPILED_EXPECTED:
        params.insert(0, pytest.param("compiled", id="compiled"))
    return params


@pytest.fixture(scope="session")
def compiled_class() -> type:
    """The compiled class; a failure (not a skip) on CPython when it did not load."""
    if not COMPILED_EXPECTED:
        pytest.skip("pure Python was requested or this is not CPython")
    if lazyconnection.CLazyConnection is None:
        pytest.fail("the compiled LazyConnection did not load on CPython", pytrace=False)
    return lazyconnection.CLazyConnection


@pytest.fixture(scope="session", params=_implementations())
def LazyConnection(request: pytest.FixtureRequest) -> type:
    """Each implementation in turn: every behaviour test runs against both."""
    if request.param == "pure-python":
        return lazyconnection.PyLazyConnection
    return request.getfixturevalue("compiled_class")


def _address_or_skip(address: Any, what: str) -> Any:
    if address is None:
        pytest.skip(f"no {what} loopback server could start here")
    return address


@pytest.fixture(scope="session")
def echo_address() -> Iterator[tuple[str, int]]:
    """An echo server on 127.0.0.1."""
    with serving("echo", "tcp") as address:
        yield _address_or_skip(address, "IPv4")


@pytest.fixture(scope="session")
def echo6_address() -> Iterator[tuple[str, int, int, int]]:
    """An echo server on ::1; skipped where this machine has no IPv6 loopback."""
    with serving("echo", "tcp6") as address:
        yield _address_or_skip(address, "IPv6")


@pytest.fixture(scope="session")
def unix_path() -> Iterator[str]:
    """An echo server on a Unix socket path."""
    with tempfile.TemporaryDirectory() as directory:
        with serving("echo", "unix", os.path.join(directory, "echo.sock")) as path:
            yield _address_or_skip(path, "Unix socket")


@pytest.fixture(scope="session")
def sink_address() -> Iterator[tuple[str, int]]:
    """A server on 127.0.0.1 that accepts and closes every connection at once."""
    with serving("sink", "tcp") as address:
        yield _address_or_skip(address, "IPv4")


@pytest.fixture(scope="session")
def misbehaving(tls_pem: Any) -> Iterator[Any]:
    """`misbehaving(role, tls=False)`: the address of a server on 127.0.0.1 that answers one
    read and then hangs up, resets, or writes a byte nobody asked for (echo_server.py)."""
    with ExitStack() as servers:
        started: dict[tuple[str, bool], Any] = {}

        def address(role: str, tls: bool = False) -> Any:
            if (role, tls) not in started:
                pem = str(tls_pem()) if tls else None
                server = serving(role, "tcp", tls=(pem, pem) if pem else None)
                started[role, tls] = _address_or_skip(servers.enter_context(server), role)
            return started[role, tls]

        yield address


@contextmanager
def _full_backlog(family: int, host: str) -> Iterator[Any]:
    """A listener whose backlog is full and never accepts: a connect to it can only time out."""
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers: list[socket.socket] = []
        try:
            for _ in range(8):  # the kernel queues a few beyond the backlog; fill them all
                filler = socket.socket(family)
                fillers.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(address)
                except socket.timeout:
                    break
            else:
                pytest.fail("the listener's backlog never filled up")
            yield address
        finally:
            for filler in fillers:
                filler.close()


@pytest.fixture(scope="session")
def full_backlog_address() -> Iterator[tuple[str, int]]:
    """A 127.0.0.1 listener whose backlog is full: a connect to it hangs until its timeout."""
    with _full_backlog(socket.AF_INET, "127.0.0.1") as address:
        yield address


@pytest.fixture(scope="session")
def full_backlog6_address() -> Iterator[tuple[str, int, int, int]]:
    """The same on ::1: a black-holed IPv6 address, as a broken dual-stack network has."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        with _full_backlog(socket.AF_INET6, "::1") as address:
            yield address
    except OSError as error:  # no ::1 on this machine: bind fails
        pytest.skip(f"no IPv6 loopback here: {error}")


@pytest.fixture(scope="session")
def tls_ca() -> Any:
    """A throwaway certificate authority (trustme)."""
    if platform.python_implementation() != "CPython":
        # trustme needs cryptography, which has no build for PyPy 3.9 here.
        pytest.importorskip("trustme")
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def tls_pem(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    """`tls_pem()`: a key and certificate naming localhost and 127.0.0.1, from the test CA."""

    def make() -> Any:
        pem = tmp_path_factory.getbasetemp() / "server.pem"
        if not pem.exists():
            certificate = request.getfixturevalue("tls_ca").issue_cert("localhost", "127.0.0.1")
            certificate.private_key_and_cert_chain_pem.write_to_path(str(pem))
        return pem

    return make


@pytest.fixture(scope="session")
def tls_address(tls_pem: Any) -> Iterator[Any]:
    """A TLS echo server on 127.0.0.1 whose certificate names localhost and 127.0.0.1."""
    pem = tls_pem()
    with serving("echo", "tcp", tls=(str(pem), str(pem))) as address:
        yield _address_or_skip(address, "TLS")


@pytest.fixture(scope="session")
def untrusted_context(tls_ca: Any) -> ssl.SSLContext:
    """A verifying client context that trusts only another throwaway CA, not the servers'."""
    import trustme

    context = ssl.create_default_context()
    trustme.CA().configure_trust(context)
    return context


@pytest.fixture
def trusting_context(tls_ca: Any) -> ssl.SSLContext:
    """A verifying client context that trusts the throwaway CA."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def refused_address() -> Iterator[tuple[str, int]]:
    """A loopback port that is bound but not listening, so every connect is refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()


@pytest.fixture
def resolve_to(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`resolve_to(*sockaddrs)` makes every name resolve to these addresses, in this order,
    through socket.getaddrinfo (blocking) and the event loop's getaddrinfo (async); it
    returns a (name, port) that only this substitute resolver knows."""

    def install(*sockaddrs: Any) -> tuple[str, int]:
        infos = [
            (
                socket.AF_INET6 if len(sockaddr) == 4 else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                sockaddr,
            )
            for sockaddr in sockaddrs
        ]

        def resolve(*args: Any, **kwargs: Any) -> list[Any]:
            return list(infos)

        async def loop_resolve(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
            return list(infos)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", loop_resolve)
        return ("dual-stack.invalid", 80)

    return install


@pytest.fixture
def dual_stack(resolve_to: Any, full_backlog6_address: Any, echo_address: Any) -> tuple[str, int]:
    """A name resolving to a hanging ::1 listener first, then the 127.0.0.1 echo server."""
    return resolve_to(full_backlog6_address, echo_address)  # type: ignore[no-any-return]


@pytest.fixture(params=["with", "async with"])
def entered(request: pytest.FixtureRequest) -> Any:
    """`entered(conn, look)`: enter conn with `with`, then (the test's second run) with
    `async with`, and return what `look(sock)` returns inside the block (by default the
    socket itself, closed by then). Errors from entering propagate. `entered.mode` says
    which of the two this run is."""

    def blocking(conn: Any, look: Any = lambda sock: sock) -> Any:
        with conn as sock:
            return look(sock)

    def in_loop(conn: Any, look: Any = lambda sock: sock) -> Any:
        async def main() -> Any:
            async with conn as sock:
                return look(sock)

        return asyncio.run(main())

    run = blocking if request.param == "with" else in_loop
    run.mode = request.param  # type: ignore[attr-defined]
    return run


def counted(**counts: int) -> dict[str, int]:
    """What `conn.stats()` says with these counts and every other one zero."""
    names = ("opened", "reused", "discarded", "idle", "in_use", "waited")
    assert set(counts) <= set(names), counts
    return {name: counts.get(name, 0) for name in names}


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


@contextmanager
def _no_leaks() -> Iterator[None]:
    gc.collect()
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        # Only ResourceWarning is recorded; every other warning meets the filters in force
        # (pytest's `filterwarnings = error`), so it still fails the test.
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    for other in caught:  # shown by a filter such as "default": passed on, not swallowed
        if not issubclass(other.category, ResourceWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == [], f"ResourceWarning: {leaked}"
    assert open_fds() == before, "a descriptor opened in the block is still open"


@pytest.fixture
def no_leaks() -> Any:
    """`with no_leaks():` fails if the work leaves a descriptor open or a socket to warn."""
    return _no_leaks


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(len(payload) - len(received))
        assert chunk, "server closed early"
        received += chunk
    return received


@pytest.fixture
def echo() -> Any:
    """`echo(sock, payload)` sends payload and returns what the echo server sent back."""
    return _echo


async def _async_echo(sock: socket.socket, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, payload)
    received = b""
    while len(received) < len(payload):
        chunk = await loop.sock_recv(sock, len(payload) - len(received))
        assert chunk, "server closed early"
        received += chunk
    return received


@pytest.fixture
def async_echo() -> Any:
    """`await async_echo(sock, payload)`: the same exchange on the running event loop."""
    return _async_echo


def redirected_socket(addresses: Iterable[Any]) -> type[socket.socket]:
    """A socket.socket subclass whose connects go to the given addresses in turn, whatever
    address they were asked for (the event loop's non-blocking connect included)."""
    targets = iter(addresses)

    class Redirected(socket.socket):
        def connect(self, address: Any) -> None:
            super().connect(next(targets))

    return Redirected


@pytest.fixture
def redirected() -> Any:
    """`redirected(*addresses)`: a socket class whose connects go to those addresses in turn."""
    return lambda *addresses: redirected_socket(addresses)


class RecordingFactory:
    """A socket_factory that makes sockets of `cls` and keeps each one, in order, in `made`."""

    def __init__(self, cls: Any = socket.socket) -> None:
        self.cls = cls
        self.made: list[Any] = []

    def __call__(self, *args: Any) -> Any:
        sock = self.cls(*args)
        self.made.append(sock)
        return sock

    def closed(self) -> list[bool]:
        return [sock.fileno() == -1 for sock in self.made]


@pytest.fixture
def recording_factory() -> Iterator[Any]:
    """`recording_factory(cls=socket.socket)`: a RecordingFactory; its sockets close at teardown."""
    factories: list[RecordingFactory] = []

    def make(cls: Any = socket.socket) -> RecordingFactory:
        factories.append(RecordingFactory(cls))
        return factories[-1]

    yield make
    for factory in factories:
        for sock in factory.made:
            sock.close()
