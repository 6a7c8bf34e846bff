"""The bounded group's candidates (max_connections): what the limit costs a checkout, and
16 threads or 64 tasks sharing four connections, against redis-py's and urllib3's blocking pools.

Shared by the benchmark (test_bounded.py) and the instruction counts, which run each checkout
candidate in a child process under callgrind:

    python benchmarks/bounded.py HOST PORT [-n N] [--contended]

prints instructions per checkout+return with and without max_connections for the running
interpreter, against a server at HOST:PORT that holds connections open (the suite's echo
server); with --contended, the threaded and asyncio figures against an echo server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Tuple

from names import EMPTY_LOOP, REDIS, URLLIB3

import lazyconnection

# Checkout+return of one idle socket, with and without the limit (not reached).
COMPILED_LIMITED = "compiled, max_connections=4"
COMPILED_UNLIMITED = "compiled, no limit"
PURE_LIMITED = "pure Python, max_connections=4"
PURE_UNLIMITED = "pure Python, no limit"
CHECKOUTS = (COMPILED_LIMITED, COMPILED_UNLIMITED, PURE_LIMITED, PURE_UNLIMITED)
DEFAULT_N = 300  # as in callgrind.py, whose docstring says why

# The contended runs: THREADS threads (or TASKS tasks) share LIMIT connections.
LIMIT = 4
THREADS = 16
TASKS = 64
REQUESTS_PER_WORKER = 100  # a run of 1,600 requests: a fifth of a second or so
COMPILED = "compiled"
PURE = "pure Python"
CONTENDED_THREADS = (COMPILED, PURE, REDIS, URLLIB3)
CONTENDED_TASKS = (COMPILED, PURE)

Loop = Callable[[int], object]


def _pooled(cls: Any, address: Tuple[str, int], limited: bool) -> Tuple[Loop, Any]:
    options = {"max_connections": LIMIT} if limited else {}
    conn = cls(address, pool_size=1, **options)
    with conn:  # opens the one socket every later `with` reuses
        pass

    def loop(n: int) -> None:
        for _ in range(n):
            with conn:
                pass

    return loop, conn.close_idle


def available(candidate: str) -> bool:
    if candidate in (COMPILED_LIMITED, COMPILED_UNLIMITED, COMPILED):
        return lazyconnection.CLazyConnection is not None
    if candidate in (REDIS, URLLIB3):
        return importlib.util.find_spec({REDIS: "redis", URLLIB3: "urllib3"}[candidate]) is not None
    return True


def make_checkout(candidate: str, address: Tuple[str, int]) -> Tuple[Loop, Any]:
    if candidate == EMPTY_LOOP:

        def empty(n: int) -> None:
            for _ in range(n):
                pass

        return empty, lambda: None
    compiled = candidate in (COMPILED_LIMITED, COMPILED_UNLIMITED)
    cls = lazyconnection.CLazyConnection if compiled else lazyconnection.PyLazyConnection
    return _pooled(cls, address, candidate in (COMPILED_LIMITED, PURE_LIMITED))


def instructions(
    address: Tuple[str, int], n: int = DEFAULT_N, python: str = sys.executable
) -> Dict[str, float]:
    """Instructions per checkout+return above an empty loop, by candidate (callgrind)."""
    import callgrind

    candidates = [c for c in CHECKOUTS if available(c)]
    return callgrind.count_script(__file__, address, candidates, EMPTY_LOOP, n, python)


# Contended: each worker does REQUESTS_PER_WORKER 1-byte requests, one per checkout.


def _exchange(sock: Any) -> None:
    sock.sendall(b"x")
    if sock.recv(1) != b"x":
        raise AssertionError("the echo server did not echo")


def _lazy_checkout(cls: Any, address: Tuple[str, int]) -> Tuple[Callable[[List[float]], None], Any]:
    conn = cls(address, pool_size=LIMIT, max_connections=LIMIT)

    def work(waits: List[float]) -> None:
        for _ in range(REQUESTS_PER_WORKER):
            started = time.perf_counter()
            with conn as sock:
                waits.append(time.perf_counter() - started)
                _exchange(sock)

    return work, conn.close_idle


def _redis_checkout(address: Tuple[str, int]) -> Tuple[Callable[[List[float]], None], Any]:
    import redis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pool = redis.BlockingConnectionPool(
            host=address[0], port=address[1], max_connections=LIMIT, timeout=30,
            protocol=2, lib_name=None, lib_version=None,
        )  # fmt: skip
        # Every connection made now, where its DeprecationWarning (lib_name) is silenced:
        # the threads then only check them out and back.
        made = [pool.get_connection() for _ in range(LIMIT)]
        for connection in made:
            pool.release(connection)

    def work(waits: List[float]) -> None:
        for _ in range(REQUESTS_PER_WORKER):
            started = time.perf_counter()
            connection = pool.get_connection()
            waits.append(time.perf_counter() - started)
            try:
                _exchange(connection._sock)
            finally:
                pool.release(connection)

    return work, pool.disconnect


def _urllib3_checkout(address: Tuple[str, int]) -> Tuple[Callable[[List[float]], None], Any]:
    import urllib3

    pool = urllib3.HTTPConnectionPool(address[0], address[1], maxsize=LIMIT, block=True)

    def work(waits: List[float]) -> None:
        for _ in range(REQUESTS_PER_WORKER):
            started = time.perf_counter()
            connection = pool._get_conn(timeout=30)
            waits.append(time.perf_counter() - started)
            try:
                if connection.sock is None:
                    connection.connect()
                _exchange(connection.sock)
            finally:
                pool._put_conn(connection)

    return work, pool.close


def make_threads(candidate: str, address: Tuple[str, int]) -> Tuple[Callable[[], Any], Any]:
    """(run, close): run() has THREADS threads do their requests; returns the waits (s)."""
    if candidate in (COMPILED, PURE):
        cls = (
            lazyconnection.CLazyConnection
            if candidate == COMPILED
            else lazyconnection.PyLazyConnection
        )
        work, close = _lazy_checkout(cls, address)
    else:
        work, close = {REDIS: _redis_checkout, URLLIB3: _urllib3_checkout}[candidate](address)

    def run() -> List[float]:
        waits: List[List[float]] = [[] for _ in range(THREADS)]
        failures: List[BaseException] = []

        def worker(mine: List[float]) -> None:
            try:
                work(mine)
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=worker, args=(w,)) for w in waits]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        if failures:
            raise failures[0]
        return [wait for mine in waits for wait in mine]

    return run, close


def make_tasks(candidate: str, address: Tuple[str, int]) -> Tuple[Callable[[], Any], Any]:
    """(run, close): run() has TASKS tasks on one loop do their requests; returns the waits."""
    cls = (
        lazyconnection.CLazyConnection if candidate == COMPILED else lazyconnection.PyLazyConnection
    )
    conn = cls(address, pool_size=LIMIT, max_connections=LIMIT)

    async def worker(waits: List[float]) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(REQUESTS_PER_WORKER // 4):
            started = time.perf_counter()
            async with conn as sock:
                waits.append(time.perf_counter() - started)
                await loop.sock_sendall(sock, b"x")
                if await loop.sock_recv(sock, 1) != b"x":
                    raise AssertionError("the echo server did not echo")

    async def main() -> List[float]:
        waits: List[List[float]] = [[] for _ in range(TASKS)]
        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in waits)), 120)
        return [wait for mine in waits for wait in mine]

    def run() -> List[float]:
        return asyncio.run(main())

    return run, conn.close_idle


def requests_per_run(kind: str) -> int:
    return (
        THREADS * REQUESTS_PER_WORKER if kind == "threads" else TASKS * (REQUESTS_PER_WORKER // 4)
    )


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def contended(address: Tuple[str, int], rounds: int = 3) -> Dict[Tuple[str, str], Dict[str, float]]:
    """(kind, candidate) -> requests/s and p50/p99 wait (µs), best of `rounds` interleaved."""
    made = {("threads", c): make_threads(c, address) for c in CONTENDED_THREADS if available(c)}
    made.update({("tasks", c): make_tasks(c, address) for c in CONTENDED_TASKS if available(c)})
    best: Dict[Tuple[str, str], Dict[str, float]] = {}
    for _ in range(rounds):
        for key, (run, _) in made.items():
            started = time.perf_counter()
            waits = run()
            elapsed = time.perf_counter() - started
            result = {
                "requests/s": requests_per_run(key[0]) / elapsed,
                "p50 wait µs": percentile(waits, 0.5) * 1e6,
                "p99 wait µs": percentile(waits, 0.99) * 1e6,
            }
            if key not in best or result["requests/s"] > best[key]["requests/s"]:
                best[key] = result
    for _, close in made.values():
        close()
    return best


def main() -> None:
    import callgrind

    parser = callgrind.script_parser(__doc__.splitlines()[0], DEFAULT_N)
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args()
    address = (args.host, args.port)
    if args.child:  # under callgrind: every candidate, then the empty loop, one process
        made = {c: make_checkout(c, address) for c in (*args.child, EMPTY_LOOP)}
        callgrind.run_made(made, args.n)
        return
    if args.contended:
        for (kind, candidate), result in contended(address).items():
            cells = ", ".join(f"{name} {value:,.0f}" for name, value in result.items())
            print(f"{kind}, {candidate}: {cells}")
        return
    counts = instructions(address, args.n)
    for candidate, count in counts.items():
        print(f"{candidate}: {count:,.0f} instructions per checkout+return")
    for limited, unlimited in (
        (COMPILED_LIMITED, COMPILED_UNLIMITED),
        (PURE_LIMITED, PURE_UNLIMITED),
    ):
        if limited in counts:
            print(f"{limited} / no limit: {counts[limited] / counts[unlimited]:.3f}")


if __name__ == "__main__":
    main()
