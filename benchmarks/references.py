"""What the benchmarks compare lazyconnection with: the recipe as readers copy it.

REFERENCE CODE, NOT PART OF lazyconnection. The two recipe classes below are kept as they
are commonly copied, bugs included (see the comments), so that the numbers compare
lazyconnection with what people actually run.
"""

import asyncio
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


class StandInEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose sock_connect returns at once, for timing `async with` dispatch."""

    async def sock_connect(self, sock, address):
        pass
