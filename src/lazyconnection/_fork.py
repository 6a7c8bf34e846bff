"""In a forked child, only the forking thread's sockets stay: the rest belong to the parent."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from ._pool import close_all

# Every LazyConnection alive in this process, by id.
_tracked: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def track(connection: Any) -> None:
    """Let a fork's child find this connection's sockets, until the connection is collected."""
    _tracked[id(connection)] = connection


def _after_fork_in_child() -> None:
    """Close the child's copies of every socket its parent's other threads held in a block,
    and of every idle one; the forking thread's sockets in use stay, to be closed rather
    than kept when their blocks end.

    Closing is not shutdown(): the parent's connections go on working, and once the parent
    closes its own, the peer sees the end of them, which the child's copies would prevent.
    """
    here = threading.get_ident()
    for connection in list(_tracked.values()):
        stacks, pool = connection._stacks, connection._pool
        for key, stack in list(stacks.items()):
            if stack and connection._caller_thread(key) != here:  # that thread is gone
                while stack:
                    _release(stack.pop())
        if pool is not None:
            close_all(pool.idle)
            if pool.lent is not None:
                pool.lent.clear()
            pool.inherited.update(sock for stack in list(stacks.values()) for sock in stack)


def _release(sock: Any) -> None:
    """Close this process's copy of the descriptor, even with a makefile() file open, which
    close() would leave open until the file closes (an HTTP response's, say)."""
    detach = getattr(sock, "detach", None)
    if detach is None:  # not a socket.socket: close() is all there is
        sock.close()
        return
    descriptor = detach()
    if descriptor >= 0:
        os.close(descriptor)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
