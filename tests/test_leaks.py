"""Nothing stays open: thousands of cycles with failures mixed in leave every count where it was."""

from __future__ import annotations

import socket

import pytest

CYCLES = 2000


class _Boom(Exception):
    pass


def test_mixed_cycles_leave_no_descriptor_or_warning(
    LazyConnection, unix_path, refused_address, no_leaks
):
    good = LazyConnection(unix_path, socket.AF_UNIX)
    refused = LazyConnection(refused_address)
    with no_leaks():
        for cycle in range(CYCLES):
            kind = cycle % 4
            if kind == 0:
                with good, good:
                    pass
            elif kind == 1:
                with pytest.raises(ConnectionRefusedError):
                    refused.__enter__()
            elif kind == 2:
                with pytest.raises(_Boom):
                    with good:
                        raise _Boom
            else:
                with good, pytest.raises(ConnectionRefusedError), refused:
                    pass
        assert good.connections == refused.connections == ()


def test_the_leak_check_itself_catches_a_leaked_socket(no_leaks):
    with pytest.raises(AssertionError, match="ResourceWarning"):
        with no_leaks():
            socket.socket()
