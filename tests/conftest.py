"""Fixtures shared by the test suite: both implementations, loopback servers, leak checks."""

from __future__ import annotations

import gc
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import lazyconnection

PURE_PYTHON_REQUESTED = bool(os.environ.get("LAZYCONNECTION_NO_EXTENSIONS"))
COMPILED_EXPECTED = (
    platform.python_implementation() == "CPython" and not PURE_PYTHON_REQUESTED
)


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
def LazyConnection(request: pytest.FixtureRequest) -> type:  # noqa: N802 - reads as the class
    """Each implementation in turn: every behaviour test runs against both."""
    if request.param == "pure-python":
        return lazyconnection.PyLazyConnection
    return request.getfixturevalue("compiled_class")


ECHO_SERVER = os.path.join(os.path.dirname(__file__), "echo_server.py")


@contextmanager
def echo_server(kind: str, path: str | None = None) -> Iterator[Any]:
    """Run echo_server.py in its own process and yield the address it listens on."""
    args = [sys.executable, ECHO_SERVER, kind] + ([path] if path else [])
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = process.stdout.readline()
        if not line:
            pytest.skip(f"no {kind} loopback server could start here")
        address = json.loads(line)
        yield tuple(address) if isinstance(address, list) else address
    finally:
        process.stdin.close()
        process.stdout.close()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def echo_address() -> Iterator[tuple[str, int]]:
    """An echo server on 127.0.0.1."""
    with echo_server("tcp") as address:
        yield address


@pytest.fixture(scope="session")
def echo6_address() -> Iterator[tuple[str, int, int, int]]:
    """An echo server on ::1; skipped where this machine has no IPv6 loopback."""
    with echo_server("tcp6") as address:
        yield address


@pytest.fixture(scope="session")
def unix_path() -> Iterator[str]:
    """An echo server on a Unix socket path."""
    with tempfile.TemporaryDirectory() as directory:
        with echo_server("unix", os.path.join(directory, "echo.sock")) as path:
            yield path


@pytest.fixture(scope="session")
def refused_address() -> Iterator[tuple[str, int]]:
    """A loopback port that is bound but not listening, so every connect is refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


@contextmanager
def _no_leaks() -> Iterator[None]:
    gc.collect()
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == [], f"ResourceWarning: {[str(w.message) for w in leaked]}"
    assert _open_fds() == before


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
