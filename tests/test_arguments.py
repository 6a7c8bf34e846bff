"""Bad constructor input fails at construction naming the parameter; good input is accepted."""

from __future__ import annotations

import pathlib
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

ADDRESS = ("127.0.0.1", 80)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"family": "AF_INET"}, TypeError, "family"),
        ({"family": 2.0}, TypeError, "family"),
        ({"type": None}, TypeError, "type"),
        ({"proto": "tcp"}, TypeError, "proto"),
        ({"max_depth": -1}, ValueError, "max_depth"),
        ({"max_depth": 0}, ValueError, "max_depth"),
        ({"max_depth": 1.5}, TypeError, "max_depth"),
        ({"max_depth": "1"}, TypeError, "max_depth"),
        ({"socket_factory": "socket"}, TypeError, "socket_factory"),
    ],
    ids=lambda value: (
        None if not isinstance(value, dict) else "-".join(f"{k}={v!r}" for k, v in value.items())
    ),
)
def test_bad_option_is_named(LazyConnection, kwargs, error, name):
    with pytest.raises(error, match=f"^{name} "):
        LazyConnection(ADDRESS, **kwargs)


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("127.0.0.1:80", TypeError),
        (["127.0.0.1", 80], TypeError),
        (("127.0.0.1",), TypeError),
        (("127.0.0.1", 80, 0), TypeError),
        ((80, "127.0.0.1"), TypeError),
        (("127.0.0.1", "80"), TypeError),
        (("127.0.0.1", -1), ValueError),
        (("127.0.0.1", 65536), ValueError),
    ],
    ids=repr,
)
def test_bad_inet_address_is_named(LazyConnection, address, error):
    with pytest.raises(error, match=r"^address"):
        LazyConnection(address)


@given(port=st.integers().filter(lambda port: not 0 <= port <= 65535))
def test_any_port_outside_range_is_refused(LazyConnection, port):
    with pytest.raises(ValueError, match="address port must be in 0-65535"):
        LazyConnection(("127.0.0.1", port))


@given(
    port=st.integers(0, 65535), host=st.sampled_from(["127.0.0.1", b"localhost", "example.invalid"])
)
def test_any_port_in_range_is_accepted_without_io(LazyConnection, port, host):
    assert LazyConnection((host, port)).address == (host, port)


@pytest.mark.parametrize(
    "address",
    [("::1", 80), ("::1", 80, 0), ("::1", 80, 0, 0)],
    ids=["pair", "flowinfo", "scope_id"],
)
def test_ipv6_tuples_are_accepted(LazyConnection, address):
    assert LazyConnection(address, socket.AF_INET6).address == address


@pytest.mark.parametrize("address", [("::1",), ("::1", 80, -1), ("::1", 80, 0, "eth0")], ids=repr)
def test_bad_ipv6_tuples_are_named(LazyConnection, address):
    with pytest.raises((TypeError, ValueError), match=r"^address"):
        LazyConnection(address, socket.AF_INET6)


def test_unix_path_like_is_accepted(LazyConnection, unix_path):
    conn = LazyConnection(pathlib.Path(unix_path), socket.AF_UNIX)
    assert conn.address == unix_path
    with conn as sock:
        assert sock.getpeername() == unix_path


@pytest.mark.parametrize("address", ["/tmp/x.sock", b"/tmp/x.sock", b"\0abstract-name"], ids=repr)
def test_unix_str_bytes_and_abstract_names_are_accepted(LazyConnection, address):
    assert LazyConnection(address, socket.AF_UNIX).address == address


def test_abstract_unix_name_connects(LazyConnection, echo):
    name = b"\0lazyconnection-test-%d" % id(LazyConnection)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()
        with LazyConnection(name, socket.AF_UNIX) as sock:
            peer, _ = server.accept()
            with peer:
                sock.sendall(b"abstract")
                assert peer.recv(8) == b"abstract"


def test_bad_unix_address_is_named(LazyConnection):
    with pytest.raises(TypeError, match=r"^address"):
        LazyConnection(("127.0.0.1", 80), socket.AF_UNIX)


def test_family_enum_and_plain_integers_are_accepted(LazyConnection):
    conn = LazyConnection(ADDRESS, int(socket.AF_INET), int(socket.SOCK_STREAM), 6)
    assert conn.family is socket.AF_INET
    assert conn.type is socket.SOCK_STREAM
    assert conn.proto == 6


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "5"}, TypeError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"source_address": "127.0.0.1"}, TypeError, "source_address"),
        ({"source_address": ("127.0.0.1", 70000)}, ValueError, "source_address"),
        ({"socket_options": 1}, TypeError, "socket_options"),
        ({"socket_options": [(6, 1)]}, TypeError, r"socket_options\[0\]"),
        ({"socket_options": [(6, 1, 1), ("tcp", 1, 1)]}, TypeError, r"socket_options\[1\]"),
        ({"socket_options": [(6, 1, 1.5)]}, TypeError, r"socket_options\[0\]"),
        ({"all_errors": 1}, TypeError, "all_errors"),
        ({"ssl_context": "tls"}, TypeError, "ssl_context"),
        ({"server_hostname": "localhost"}, ValueError, "server_hostname"),
        ({"on_connect": "print"}, TypeError, "on_connect"),
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1.5}, TypeError, "retries"),
        ({"backoff": -0.1}, ValueError, "backoff"),
        ({"backoff": None}, TypeError, "backoff"),
        ({"timeout": 10**400}, ValueError, "timeout"),  # too large even for a float
        ({"backoff": 10**400}, ValueError, "backoff"),
    ],
    ids=lambda value: (
        None if not isinstance(value, dict) else "-".join(f"{k}={v!r}" for k, v in value.items())
    ),
)
def test_bad_connection_option_is_named(LazyConnection, kwargs, error, name):
    with pytest.raises(error, match=f"^{name}"):
        LazyConnection(ADDRESS, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"happy_eyeballs_delay": -0.25}, ValueError, "happy_eyeballs_delay"),
        ({"happy_eyeballs_delay": float("inf")}, ValueError, "happy_eyeballs_delay"),
        ({"happy_eyeballs_delay": float("nan")}, ValueError, "happy_eyeballs_delay"),
        ({"happy_eyeballs_delay": "0.25"}, TypeError, "happy_eyeballs_delay"),
        ({"happy_eyeballs_delay": True}, TypeError, "happy_eyeballs_delay"),
        ({"happy_eyeballs_delay": 0.25, "family": socket.AF_INET}, ValueError,
         "happy_eyeballs_delay"),
        ({"tcp_nodelay": 1}, TypeError, "tcp_nodelay"),
        ({"tcp_nodelay": None}, TypeError, "tcp_nodelay"),
        ({"tcp_nodelay": True, "type": socket.SOCK_DGRAM}, ValueError, "tcp_nodelay"),
        ({"tcp_keepalive": 1}, TypeError, "tcp_keepalive"),
        ({"tcp_keepalive": "60,10,5"}, TypeError, "tcp_keepalive"),
        ({"tcp_keepalive": (60, 10)}, TypeError, "tcp_keepalive"),
        ({"tcp_keepalive": (60, 10, 5, 1)}, TypeError, "tcp_keepalive"),
        ({"tcp_keepalive": (0, 10, 5)}, ValueError, "tcp_keepalive idle"),
        ({"tcp_keepalive": (60, 0, 5)}, ValueError, "tcp_keepalive interval"),
        ({"tcp_keepalive": (60, 10, -1)}, ValueError, "tcp_keepalive count"),
        ({"tcp_keepalive": (60.5, 10, 5)}, TypeError, "tcp_keepalive idle"),
        ({"tcp_keepalive": (60, True, 5)}, TypeError, "tcp_keepalive interval"),
        ({"tcp_keepalive": True, "type": socket.SOCK_DGRAM}, ValueError, "tcp_keepalive"),
    ],
    ids=lambda value: (
        None if not isinstance(value, dict) else "-".join(f"{k}={v!r}" for k, v in value.items())
    ),
)  # fmt: skip
def test_bad_race_or_tcp_preset_is_named(LazyConnection, kwargs, error, name):
    kwargs = {"family": socket.AF_UNSPEC, **kwargs}
    with pytest.raises(error, match=f"^{name} "):
        LazyConnection(ADDRESS, **kwargs)


@pytest.mark.parametrize("option", ["tcp_nodelay", "tcp_keepalive"])
def test_tcp_presets_need_an_ip_family(LazyConnection, option):
    with pytest.raises(ValueError, match=f"^{option} needs a TCP connection"):
        LazyConnection("/tmp/x.sock", socket.AF_UNIX, **{option: True})


def test_keepalive_timings_are_refused_where_the_platform_has_no_knobs(LazyConnection, monkeypatch):
    from lazyconnection import _settings

    monkeypatch.setattr(_settings, "KEEPALIVE_KNOBS", None)
    with pytest.raises(ValueError, match=r"^tcp_keepalive .* not supported on this platform"):
        LazyConnection(ADDRESS, tcp_keepalive=(60, 10, 5))
    assert LazyConnection(ADDRESS, tcp_keepalive=True).options["tcp_keepalive"] is True


def test_keepalive_false_reads_as_none(LazyConnection):
    assert LazyConnection(ADDRESS, tcp_keepalive=False).options["tcp_keepalive"] is None


def test_server_hostname_must_be_a_string(LazyConnection):
    import ssl

    with pytest.raises(TypeError, match=r"^server_hostname"):
        LazyConnection(ADDRESS, ssl_context=ssl.create_default_context(), server_hostname=b"x")


def test_unix_tls_needs_a_server_hostname_when_hostnames_are_checked(LazyConnection):
    import ssl

    with pytest.raises(ValueError, match=r"^server_hostname"):
        LazyConnection("/tmp/x.sock", socket.AF_UNIX, ssl_context=ssl.create_default_context())


@pytest.mark.parametrize(
    "address", ["localhost:80", ("localhost",), ("localhost", 80, 0)], ids=repr
)
def test_unspec_needs_a_host_and_port(LazyConnection, address):
    with pytest.raises(TypeError, match=r"^address"):
        LazyConnection(address, socket.AF_UNSPEC)


def _tls():
    import ssl

    return ssl.create_default_context()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "name"),
    [
        # Each of these was accepted, then failed at `with` with an error naming nothing.
        ((ADDRESS,), {"timeout": 1e10}, ValueError, "timeout"),
        ((ADDRESS,), {"backoff": 10**10}, ValueError, "backoff"),
        ((ADDRESS,), {"pool_size": 1, "idle_timeout": 1e10}, ValueError, "idle_timeout"),
        ((ADDRESS,), {"pool_size": 1, "max_lifetime": 1e10}, ValueError, "max_lifetime"),
        ((ADDRESS,), {"tcp_keepalive": (10**10, 1, 1)}, ValueError, "tcp_keepalive idle"),
        ((ADDRESS,), {"tcp_keepalive": (1, 1, 2**31)}, ValueError, "tcp_keepalive count"),
        (
            (ADDRESS,),
            {"socket_options": [(1, 2, 10**30)]},
            ValueError,
            r"socket_options\[0\] value",
        ),
        (
            (ADDRESS,),
            {"socket_options": [(1, 2, -(2**31) - 1)]},
            ValueError,
            r"socket_options\[0\] value",
        ),
        (
            (ADDRESS,),
            {"socket_options": [(1, 10**12, 1)]},
            ValueError,
            r"socket_options\[0\] optname",
        ),
        ((ADDRESS,), {"socket_options": [(2**31, 2, 1)]}, ValueError, r"socket_options\[0\] level"),
        ((ADDRESS, 10**30), {}, ValueError, "family"),
        ((ADDRESS, socket.AF_INET, 2**31), {}, ValueError, "type"),
        ((ADDRESS, socket.AF_INET, socket.SOCK_STREAM, 10**30), {}, ValueError, "proto"),
        ((("127.0.0.1\x00evil", 80),), {}, ValueError, "address host"),
        (((b"127.0.0.1\x00", 80),), {}, ValueError, "address host"),
        ((ADDRESS,), {"source_address": ("\x00", 0)}, ValueError, "source_address host"),
        ((("::1", 80, 2**20, 0), socket.AF_INET6), {}, ValueError, "address flowinfo"),
        ((("::1", 80, 0, 2**32), socket.AF_INET6), {}, ValueError, "address scope_id"),
        ((ADDRESS,), {"ssl_context": _tls(), "server_hostname": ""}, ValueError, "server_hostname"),
        (
            (ADDRESS,),
            {"ssl_context": _tls(), "server_hostname": ".a"},
            ValueError,
            "server_hostname",
        ),
        (
            (("a.example", 443),),
            {"ssl_context": _tls(), "server_hostname": "a\x00"},
            ValueError,
            "server_hostname",
        ),
        (((b"caf\xc3\xa9.example", 443),), {"ssl_context": _tls()}, ValueError, "address host"),
        (((".example", 443),), {"ssl_context": _tls()}, ValueError, "address host"),
        ((("", 443),), {"ssl_context": _tls()}, ValueError, "server_hostname"),
        ((("\udcff", 80),), {}, ValueError, "address host"),
        (
            (ADDRESS,),
            {"ssl_context": _tls(), "server_hostname": "a" * 64 + ".com"},
            ValueError,
            "server_hostname",
        ),
        (
            (ADDRESS,),
            {"ssl_context": _tls(), "server_hostname": "a..b"},
            ValueError,
            "server_hostname",
        ),
        ((("\udcff.example", 443),), {"ssl_context": _tls()}, ValueError, "address host"),
    ],
    ids=repr,
)
def test_values_the_socket_calls_would_refuse_are_refused_at_construction(
    LazyConnection, args, kwargs, error, name
):
    with pytest.raises(error, match=f"^{name} "):
        LazyConnection(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((ADDRESS,), {"timeout": 2.0**32, "backoff": 2**32}),
        ((ADDRESS,), {"tcp_keepalive": (2**31 - 1, 1, 1)}),
        ((ADDRESS,), {"socket_options": [(-(2**31), 2**31 - 1, -(2**31)), (1, 2, b"\xff" * 64)]}),
        ((("::1", 80, 2**20 - 1, 2**32 - 1), socket.AF_INET6), {}),
        ((("", 443),), {"ssl_context": _tls(), "server_hostname": "a.example"}),
        ((ADDRESS,), {"socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)]}),
        ((("bücher.example", 80),), {"ssl_context": _tls()}),
    ],
    ids=repr,
)
def test_the_largest_values_the_socket_calls_take_are_accepted(LazyConnection, args, kwargs):
    LazyConnection(*args, **kwargs)


def test_the_largest_timeout_is_one_a_socket_takes(LazyConnection, echo_address):
    conn = LazyConnection(echo_address, timeout=2**32)
    with conn as sock:
        assert sock.gettimeout() == 2**32
