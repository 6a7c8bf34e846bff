"""Nothing stays open: thousands of cycles with failures mixed in leave every count where it was."""

from __future__ import annotations

import socket
import warnings

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


def test_the_leak_check_itself_catches_a_descriptor_left_open(no_leaks):
    kept = []  # referenced, so no ResourceWarning: only the descriptor count can tell
    try:
        with pytest.raises(AssertionError, match="still open"):
            with no_leaks():
                kept.append(socket.socket())
    finally:
        for sock in kept:
            sock.close()


def test_other_warnings_still_fail_inside_the_leak_check(no_leaks):
    # pytest's `filterwarnings = error` is in force: the leak check must not swallow it.
    went_on = []
    with pytest.raises(DeprecationWarning, match="old"):
        with no_leaks():
            warnings.warn("old", DeprecationWarning, stacklevel=1)
            went_on.append(True)
    assert went_on == [], "the warning was recorded, not raised where it was warned"


def test_other_warnings_shown_inside_the_leak_check_reach_the_outer_record(no_leaks):
    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always", UserWarning)
        with no_leaks():
            warnings.warn("passed on", UserWarning, stacklevel=1)
    assert [str(w.message) for w in outer] == ["passed on"]
