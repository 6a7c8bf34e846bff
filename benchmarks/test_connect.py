"""End to end: a real connect and close to a loopback server, per implementation and raw."""

import socket

import pytest

import lazyconnection


def _with_block(conn):
    def run():
        with conn:
            pass

    return run


@pytest.mark.benchmark(group="connect-tcp")
def test_tcp_compiled(benchmark, compiled_class, tcp_address):
    benchmark(_with_block(compiled_class(tcp_address)))


@pytest.mark.benchmark(group="connect-tcp")
def test_tcp_pure_python(benchmark, tcp_address):
    benchmark(_with_block(lazyconnection.PyLazyConnection(tcp_address)))


@pytest.mark.benchmark(group="connect-tcp")
def test_tcp_raw_socket(benchmark, tcp_address):
    def run():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect(tcp_address)
        sock.close()

    benchmark(run)


@pytest.mark.benchmark(group="connect-tcp")
def test_tcp_create_connection(benchmark, tcp_address):
    def run():
        socket.create_connection(tcp_address).close()

    benchmark(run)


@pytest.mark.benchmark(group="connect-unix")
def test_unix_compiled(benchmark, compiled_class, unix_path):
    benchmark(_with_block(compiled_class(unix_path, socket.AF_UNIX)))


@pytest.mark.benchmark(group="connect-unix")
def test_unix_pure_python(benchmark, unix_path):
    benchmark(_with_block(lazyconnection.PyLazyConnection(unix_path, socket.AF_UNIX)))


@pytest.mark.benchmark(group="connect-unix")
def test_unix_raw_socket(benchmark, unix_path):
    def run():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(unix_path)
        sock.close()

    benchmark(run)
