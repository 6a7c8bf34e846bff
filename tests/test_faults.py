"""A fault matrix on real loopback sockets: after thousands of mixed failures nothing stays open."""

from __future__ import annotations

import itertools
import socket
import ssl

import pytest

CYCLES = 2000
TIMEOUTS_AT_MOST = 25  # each one waits out its timeout


class _Refused(Exception):
    pass


def _refuse(sock):
    raise _Refused


def _interrupt(sock):
    raise KeyboardInterrupt


def _body_raises(sock):
    raise _Refused


def _server_closes(sock):
    if sock.recv(1) == b"":
        raise EOFError("the server closed the connection")


def _tls_faults(request, LazyConnection):
    """The TLS rows of the matrix; on PyPy, where trustme cannot be installed, none."""
    try:
        tls_address = request.getfixturevalue("tls_address")
    except pytest.skip.Exception:
        return {}
    untrusted = request.getfixturevalue("untrusted_context")
    trusting = request.getfixturevalue("trusting_context")
    return {
        "untrusted CA": (
            LazyConnection(tls_address, ssl_context=untrusted),
            None,
            ssl.SSLCertVerificationError,
        ),
        "wrong hostname": (
            LazyConnection(tls_address, ssl_context=trusting, server_hostname="wrong.invalid"),
            None,
            ssl.SSLCertVerificationError,
        ),
    }


def test_fault_matrix_leaves_nothing_open(
    request,
    LazyConnection,
    echo_address,
    sink_address,
    refused_address,
    full_backlog_address,
    no_leaks,
):
    good = LazyConnection(echo_address)
    # kind: (connection, what the body does or None, what the caller sees)
    faults = {
        "refused": (
            LazyConnection(refused_address, retries=1, backoff=0),
            None,
            ConnectionRefusedError,
        ),
        "timeout": (LazyConnection(full_backlog_address, timeout=0.02), None, socket.timeout),
        "on_connect raises": (LazyConnection(echo_address, on_connect=_refuse), None, _Refused),
        **_tls_faults(request, LazyConnection),
        "KeyboardInterrupt in on_connect": (
            LazyConnection(echo_address, on_connect=_interrupt),
            None,
            KeyboardInterrupt,
        ),
        "body raises": (LazyConnection(echo_address), _body_raises, _Refused),
        "server closes mid-body": (
            LazyConnection(sink_address),
            _server_closes,
            (EOFError, ConnectionResetError),
        ),
    }
    seen = dict.fromkeys(faults, 0)
    kinds = itertools.cycle(faults)
    with no_leaks():
        for _ in range(CYCLES):
            kind = next(kinds)
            if kind == "timeout" and seen[kind] >= TIMEOUTS_AT_MOST:
                kind = "refused"
            conn, body, raised = faults[kind]
            seen[kind] += 1
            with good as outer:  # an open connection around every failure stays untouched
                with pytest.raises(raised):
                    with conn as sock:
                        body(sock)
                assert conn.connections == ()
                assert good.connections == (outer,)
    assert good.connections == ()
    assert all(count > 0 for count in seen.values()), seen
    with good as sock:  # still usable
        assert sock.getpeername() == echo_address
