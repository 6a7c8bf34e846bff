"""What the benchmarks compare lazyconnection with: the recipe as readers copy it.

REFERENCE CODE, NOT PART OF lazyconnection. The two recipe classes below are kept as they
are commonly copied, bugs included (see the comments), so that the numbers compare
lazyconnection with what people actually run.
"""

import asyncio
import select
import threading
from socket import AF_INET, SOCK_STREAM, socket


class RecipeStackLazyConnection:
    """The recipe's nestable version: a list of sockets on the object.

    Known bugs, kept on purpose: the socket leaks when connect() fails, and threads,
    asyncio tasks or greenlets sharing one object pop each other's sockets.
    """

    def __init__(self, address, family=AF_INET, type=SOCK_STREAM):
        self.address = address
        self.family = family
        self.type = type
        self.connections = []

    def __enter__(self):
        sock = socket(self.family, self.type)
        sock.connect(self.address)
        self.connections.append(sock)
        return sock

    def __exit__(self, exc_ty, exc_val, tb):
        self.connections.pop().close()


class RecipeThreadLocalLazyConnection:
    """The recipe's thread-local version.

    Known bugs, kept on purpose: family and type are ignored (always AF_INET,
    SOCK_STREAM), the socket leaks when connect() fails, and asyncio tasks or greenlets
    in one thread share the socket.
    """

    def __init__(self, address, family=AF_INET, type=SOCK_STREAM):
        self.address = address
        self.family = AF_INET
        self.type = SOCK_STREAM
        self.local = threading.local()

    def __enter__(self):
        if hasattr(self.local, "sock"):
            raise RuntimeError("Already connected")
        self.local.sock = socket(self.family, self.type)
        self.local.sock.connect(self.address)
        return self.local.sock

    def __exit__(self, exc_ty, exc_val, tb):
        self.local.sock.close()
        del self.local.sock


class HandWrittenAsyncPool:
    """A pool of idle sockets for `async with`, as a competent user writes one by hand.

    `__aenter__` pops an idle socket, checks it with a zero-timeout poll (readable while idle:
    closed by the peer, or stray data; then it is dropped), and connects a new one when none
    is left; `__aexit__` puts it back. Not safe for tasks that interleave their blocks on one
    object (one list of sockets in use), which most hand-written pools are not either.
    """

    def __init__(self, address, family=AF_INET, type=SOCK_STREAM):
        self.address = address
        self.family = family
        self.type = type
        self.idle = []
        self.in_use = []

    async def __aenter__(self):
        while self.idle:
            sock = self.idle.pop()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(0):
                break
            sock.close()
        else:
            sock = socket(self.family, self.type)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, self.address)
            except BaseException:
                sock.close()
                raise
        self.in_use.append(sock)
        return sock

    async def __aexit__(self, exc_type, exc, tb):
        sock = self.in_use.pop()
        if exc_type is None:
            self.idle.append(sock)
        else:
            sock.close()

    def close_idle(self):
        while self.idle:
            self.idle.pop().close()


class StandInEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose sock_connect returns at once, for timing `async with` dispatch."""

    async def sock_connect(self, sock, address):
        pass
