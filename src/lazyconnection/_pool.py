"""Idle sockets kept for reuse: what both kernels share beyond the checkout and return."""

from __future__ import annotations

import select
import socket
import weakref
from typing import Any, Dict, List, Optional, Set, Tuple, Union

# A socket, or (socket, connected at, idle since) when the pool has idle_timeout or
# max_lifetime, as both kernels keep them; times are time.monotonic().
Idle = Union[Any, Tuple[Any, float, float]]


class Pool:
    """The idle sockets of one LazyConnection and the sockets it has handed out.

    The kernel takes and returns sockets itself; this object is what the public class, the
    collector and a fork's child (_fork.py) see of them.
    """

    __slots__ = ("idle", "lent", "inherited", "__weakref__")

    def __init__(self, owner: Any, timed: bool) -> None:
        self.idle: List[Idle] = []
        # With max_lifetime, each socket handed out -> its time of connect.
        self.lent: Optional[Dict[Any, float]] = {} if timed else None
        self.inherited: Set[Any] = set()  # in a forked child: the sockets in use at the fork
        # Once the owner is collected (or at interpreter exit) its idle sockets are closed,
        # quietly: no ResourceWarning for sockets nobody holds.
        weakref.finalize(owner, close_all, self.idle)

    def close_idle(self) -> int:
        return close_all(self.idle)


def close_all(idle: List[Idle]) -> int:
    """Close every idle socket; say how many. Safe beside other threads taking them."""
    count = 0
    while True:
        try:
            entry = idle.pop()
        except IndexError:
            return count
        sock: Any = entry[0] if type(entry) is tuple else entry
        sock.close()
        count += 1


def unusable(sock: Any) -> bool:
    """Closed, or readable without a request (end of stream, a reset, or bytes nobody asked
    for): the pure kernel's twin of the compiled poll() check, one syscall, no new descriptor."""
    try:
        fd = sock.fileno()
    except Exception:  # any failure: not to be handed out
        return True
    if fd < 0:
        return True
    if _poll is None:  # no poll() on this platform; select() is limited to descriptors < 1024
        return bool(select.select([fd], [], [], 0)[0])
    checking = _poll()
    checking.register(fd, select.POLLIN)
    return bool(checking.poll(0))


_poll = getattr(select, "poll", None)
_PEEK = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)


def _whole_records(sock: Any) -> bool:
    """Whether the bytes waiting are whole TLS records: part of one may be data whose rest
    is still on its way, which reading now would not show."""
    try:
        waiting = socket.socket.recv(sock, 65536, _PEEK)  # the raw bytes, left in place
    except OSError:
        return False
    end = 0
    while end + 5 <= len(waiting):  # each record: type, version, 2-byte length, body
        end += 5 + int.from_bytes(waiting[end + 3 : end + 5], "big")
    return 0 < end == len(waiting)


def is_open(sock: Any) -> bool:
    """Whether a socket handed back may be kept for another caller: the pure kernel's twin of
    the compiled check. It must be open (the body may have closed it), with no file of its
    makefile() open, which would read the next caller's replies. A socket.socket closed
    while such a file is open keeps its descriptor until the file closes too: its _closed
    says so, and _io_refs counts the files."""
    try:
        return bool(
            sock.fileno() >= 0
            and not getattr(sock, "_closed", False)
            and not getattr(sock, "_io_refs", 0)
        )
    except Exception:  # any failure: not to be kept
        return False


def tls_usable(sock: Any, unusable: bool) -> bool:
    """A TLS socket's check, after poll(): one whose TLS the body ended (unwrap()) or with
    decrypted bytes waiting is unusable, and a readable one may only hold whole records that
    carry no data (TLS 1.3 session tickets).

    Reading to tell them apart is safe: a socket that yields data is discarded anyway.
    """
    import ssl

    if getattr(sock, "_sslobj", None) is None or sock.pending():
        return False
    if not unusable:
        return True
    if sock.fileno() < 0 or not _whole_records(sock):
        return False
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1)  # end of stream (b"") or data: unusable either way
    except ssl.SSLWantReadError:
        return not sock.pending()  # only records without data were waiting
    except (OSError, ValueError):
        return False
    finally:
        if sock.fileno() >= 0:
            sock.settimeout(timeout)
    return False
