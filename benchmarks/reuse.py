"""The reuse group's candidates: one idle socket checked out and returned, by each pool.

Shared by the timed benchmark (test_reuse.py) and the instruction counts, which run each
candidate in a child process under callgrind:

    python benchmarks/reuse.py HOST PORT [-n N]

prints instructions per checkout+return for the running interpreter, against a server at
HOST:PORT that holds connections open without writing (the suite's echo server).
"""

from __future__ import annotations

import importlib.util
import queue
import socket
import sys
import warnings
from typing import Any, Callable, Dict, List, Tuple

from names import COMPILED, EMPTY_LOOP, LIFO_QUEUE, PURE, REDIS, URLLIB3

import lazyconnection

CANDIDATES = (COMPILED, PURE, REDIS, URLLIB3, LIFO_QUEUE)
DEFAULT_N = 300  # as in callgrind.py, whose docstring says why

Loop = Callable[[int], object]


def _pooled(cls: Any, address: Tuple[str, int]) -> Tuple[Loop, Callable[[], object]]:
    conn = cls(address, pool_size=1)
    with conn:  # opens the one socket every later `with` reuses
        pass

    def loop(n: int) -> None:
        for _ in range(n):
            with conn:
                pass

    return loop, conn.close_idle


def _redis(address: Tuple[str, int]) -> Tuple[Loop, Callable[[], object]]:
    import redis

    # Protocol 2 and no client-library names: connecting sends nothing, so the echo server
    # does for a server; the loop itself does no I/O, only redis-py's own checks. Newer
    # redis-py deprecates lib_name for driver_info, which older ones lack: one spelling for all.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pool = redis.ConnectionPool(
            host=address[0], port=address[1], protocol=2, lib_name=None, lib_version=None
        )
        pool.release(pool.get_connection())

    def loop(n: int) -> None:
        for _ in range(n):
            connection = pool.get_connection()
            pool.release(connection)

    return loop, pool.disconnect


def _urllib3(address: Tuple[str, int]) -> Tuple[Loop, Callable[[], object]]:
    import urllib3

    pool = urllib3.HTTPConnectionPool(address[0], address[1], maxsize=1)
    connection = pool._get_conn()
    connection.connect()
    pool._put_conn(connection)

    def loop(n: int) -> None:
        for _ in range(n):
            connection = pool._get_conn()  # its drop check: a poll() on the socket
            pool._put_conn(connection)

    return loop, pool.close


def _lifo_queue(address: Tuple[str, int]) -> Tuple[Loop, Callable[[], object]]:
    """The reference: what a get and a put of a thread-safe queue cost, checking nothing."""
    idle: queue.LifoQueue[socket.socket] = queue.LifoQueue()
    idle.put(socket.create_connection(address))

    def loop(n: int) -> None:
        for _ in range(n):
            idle.put(idle.get())

    return loop, lambda: idle.get().close()


def _empty(address: Tuple[str, int]) -> Tuple[Loop, Callable[[], object]]:
    def loop(n: int) -> None:
        for _ in range(n):
            pass

    return loop, lambda: None


def available(candidate: str) -> bool:
    """Whether the candidate can run here; one that cannot is reported missing, never faked."""
    if candidate == COMPILED:
        return lazyconnection.CLazyConnection is not None
    if candidate in (REDIS, URLLIB3):
        return importlib.util.find_spec({REDIS: "redis", URLLIB3: "urllib3"}[candidate]) is not None
    return True


def make(candidate: str, address: Tuple[str, int]) -> Tuple[Loop, Callable[[], object]]:
    """(loop, close) for an available candidate."""
    if candidate in (COMPILED, PURE):
        cls = (
            lazyconnection.CLazyConnection
            if candidate == COMPILED
            else lazyconnection.PyLazyConnection
        )
        return _pooled(cls, address)
    makers = {REDIS: _redis, URLLIB3: _urllib3, LIFO_QUEUE: _lifo_queue, EMPTY_LOOP: _empty}
    return makers[candidate](address)


def instructions(
    address: Tuple[str, int], n: int = DEFAULT_N, python: str = sys.executable
) -> Dict[str, float]:
    """Instructions per checkout+return above an empty loop, by candidate (callgrind)."""
    import callgrind

    candidates = [c for c in CANDIDATES if available(c)]
    return callgrind.count_script(__file__, address, candidates, EMPTY_LOOP, n, python)


def figures(counts: Dict[str, float]) -> List[Dict[str, object]]:
    """The summary's figures from `instructions`: counts and compiled's ratios."""
    from interleave import exact
    from names import REUSE_BEST_OTHER, REUSE_COUNTED

    group = REUSE_COUNTED
    result = [
        exact(value, "instructions", group=group, what="per checkout+return", of=candidate)
        for candidate, value in counts.items()
    ]
    if COMPILED not in counts:
        return result
    ratio = counts[COMPILED] / counts[PURE]
    result.append(exact(ratio, "ratio", group=group, what=f"compiled / {PURE}", of=""))
    others = [counts[n] for n in (REDIS, URLLIB3) if n in counts]
    if others:
        ratio = counts[COMPILED] / min(others)
        what = f"compiled / {REUSE_BEST_OTHER}"
        result.append(exact(ratio, "ratio", group=group, what=what, of=""))
    return result


def main() -> None:
    import callgrind

    args = callgrind.script_parser(__doc__.splitlines()[0], DEFAULT_N).parse_args()
    address = (args.host, args.port)
    if args.child:
        callgrind.run_made({c: make(c, address) for c in (*args.child, EMPTY_LOOP)}, args.n)
        return
    for candidate, count in instructions(address, args.n).items():
        print(f"{candidate}: {count:,.0f} instructions per checkout+return")


if __name__ == "__main__":
    main()
