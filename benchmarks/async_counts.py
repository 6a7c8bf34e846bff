"""Counted `async with`s, and a context's first `with` against a later one (callgrind).

The same child-and-dump machinery as callgrind.py (`per_operation`, `run_counted`), one more
child process, which counts:

* `async with`, no pool, real non-blocking UDP sockets to 127.0.0.1:9 (``loop.sock_connect``
  on one completes without suspending): compiled, pure Python, the floor (the empty compiled
  asynchronous context manager around the same calls) and the calls inline in a coroutine.
  Each loop is n `async with`s in one coroutine run by ``loop.run_until_complete`` on one event
  loop, so that the loop's own costs (the task, its context) cancel in count(2N) - count(N).
* `async with` of a pool, checkout+return of one idle TCP socket held by a server, as reuse.py
  does for `with`: compiled and pure Python with pool_size=1 against a hand-written pool
  (references.HandWrittenAsyncPool).
* A context's first `with`: each operation in a fresh ``contextvars.Context()``, against the
  same socket calls inline made the same way (so that the Context's own cost cancels); the
  floor's too, and the floor's with a context variable set on enter, whose difference is
  the least a first `with` costs if a copy of its context is to inherit a link to it; for
  `async with`, inside one running event loop, each operation is ``Context().run(step)``, where
  step makes the coroutine and drives it with one ``send(None)`` (it completes at once). Its
  later `with` is the per-`with` overhead in one context: callgrind.py's (real UDP socket) for
  `with`, this module's no-pool one for `async with`.

By hand, for the running interpreter, against a server at HOST:PORT that holds connections
open without writing (``python benchmarks/callgrind.py`` starts one and prints these too):

    python benchmarks/async_counts.py HOST PORT [-n N]
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from socket import AF_INET, SOCK_DGRAM, socket
from typing import Any, Callable, Dict, List, Tuple

from names import (
    ASYNC_COUNTED,
    ASYNC_HELPER,
    ASYNC_REUSE_COUNTED,
    COMPILED,
    CONTEXT_VARIABLE,
    EMPTY_LOOP,
    FIRST_COUNTED,
    FLOOR,
    INLINE,
    PURE,
)

import lazyconnection

ADDRESS = ("127.0.0.1", 9)  # UDP connect only records the peer: nothing is sent
DEFAULT_N = 300  # as in callgrind.py, whose docstring says why

# The kinds of loop; a job is "kind: candidate", one word of the child's command line.
NO_POOL = "async with"
POOLED = "async with, pool_size=1"
FIRST = "first with"
FIRST_ASYNC = "first async with"
KINDS = {
    NO_POOL: (COMPILED, PURE, FLOOR, INLINE),
    POOLED: (COMPILED, PURE, ASYNC_HELPER),
    FIRST: (COMPILED, PURE, INLINE, FLOOR, CONTEXT_VARIABLE),
    FIRST_ASYNC: (COMPILED, PURE, INLINE),
}
EMPTY = f"{NO_POOL}: {EMPTY_LOOP}"  # n empty turns in a coroutine run by the event loop
# The figures' wording, as the summary and the table by version spell them.
OVERHEAD = "overhead above the socket calls inline"
FIRST_OVERHEAD = {
    FIRST: "first `with` of a fresh Context: overhead above the calls inline in one",
    FIRST_ASYNC: "first `async with` of a fresh Context: overhead above the calls inline in one",
}
FIRST_RATIO = {FIRST: "first / later `with`", FIRST_ASYNC: "first / later `async with`"}
# The target is first / later <= 2: what the first adds may be at most one later `with`.
VARIABLE_COST = "a context variable set on a fresh Context's first `with`"
VARIABLE_RATIO = "context variable set / later `with`"

Loop = Callable[[int], object]


def job(kind: str, candidate: str) -> str:
    return f"{kind}: {candidate}"


def _classes() -> Dict[str, Any]:
    classes = {PURE: lazyconnection.PyLazyConnection}
    if lazyconnection.CLazyConnection is not None:
        classes[COMPILED] = lazyconnection.CLazyConnection
    return classes


def jobs() -> List[str]:
    """Every job this interpreter can run: compiled only where it is built."""
    classes = _classes()
    return [
        job(kind, candidate)
        for kind, candidates in KINDS.items()
        for candidate in candidates
        if candidate in classes or candidate not in (COMPILED, PURE)
    ]


def _loops(
    names: List[str], address: Tuple[str, int], stand_ins_dir: str
) -> Tuple[Dict[str, Loop], Callable[[], object]]:
    """In the child: (loop by job, close), every loop on one event loop."""
    sys.path.insert(0, stand_ins_dir)
    import _stand_ins
    import references

    event_loop = asyncio.new_event_loop()
    classes = _classes()

    def on_loop(coroutine_function: Callable[[int], Any]) -> Loop:
        return lambda n: event_loop.run_until_complete(coroutine_function(n))

    def async_with(manager: Any) -> Loop:
        async def run(n: int) -> None:
            for _ in range(n):
                async with manager:
                    pass

        return on_loop(run)

    async def inline_once() -> None:
        sock = socket(AF_INET, SOCK_DGRAM)
        sock.setblocking(False)
        await event_loop.sock_connect(sock, ADDRESS)
        sock.close()

    async def inline(n: int) -> None:
        for _ in range(n):
            sock = socket(AF_INET, SOCK_DGRAM)
            sock.setblocking(False)
            await event_loop.sock_connect(sock, ADDRESS)
            sock.close()

    floor_manager = _stand_ins.EmptyAsyncContextManager()

    async def floor(n: int) -> None:
        for _ in range(n):
            async with floor_manager:
                sock = socket(AF_INET, SOCK_DGRAM)
                sock.setblocking(False)
                await event_loop.sock_connect(sock, ADDRESS)
                sock.close()

    async def empty(n: int) -> None:
        for _ in range(n):
            pass

    def inline_block() -> None:
        sock = socket(AF_INET, SOCK_DGRAM)
        sock.connect(ADDRESS)
        sock.close()

    def in_fresh_contexts(block: Callable[[], object]) -> Loop:
        def loop(n: int) -> None:
            for _ in range(n):
                contextvars.Context().run(block)

        return loop

    def step(coroutine_function: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            coroutine = coroutine_function()
            try:
                coroutine.send(None)
            except StopIteration:
                return
            coroutine.close()
            raise RuntimeError("the `async with` suspended: this count assumes it does not")

        return run

    def steps_in_fresh_contexts(coroutine_function: Callable[[], Any]) -> Loop:
        run = step(coroutine_function)

        async def loop(n: int) -> None:
            for _ in range(n):
                contextvars.Context().run(run)

        return on_loop(loop)

    def block_of(conn: Any) -> Callable[[], None]:
        def block() -> None:
            with conn:
                pass

        return block

    def floor_block_of(manager: Any) -> Callable[[], None]:
        def block() -> None:
            with manager:
                inline_block()

        return block

    def async_block_of(conn: Any) -> Callable[[], Any]:
        async def block() -> None:
            async with conn:
                pass

        return block

    def dgram(candidate: str) -> Any:
        return classes[candidate](ADDRESS, AF_INET, SOCK_DGRAM)

    pooled: List[Any] = []

    def pool(candidate: str) -> Any:
        if candidate == ASYNC_HELPER:
            manager = references.HandWrittenAsyncPool(address)
        else:
            manager = classes[candidate](address, pool_size=1)
        async_with(manager)(1)  # opens the one socket every later `async with` reuses
        pooled.append(manager)
        return manager

    makers: Dict[str, Callable[[], Loop]] = {
        EMPTY: lambda: on_loop(empty),
        job(NO_POOL, INLINE): lambda: on_loop(inline),
        job(NO_POOL, FLOOR): lambda: on_loop(floor),
        job(FIRST, INLINE): lambda: in_fresh_contexts(inline_block),
        job(FIRST_ASYNC, INLINE): lambda: steps_in_fresh_contexts(inline_once),
        job(FIRST, FLOOR): lambda: in_fresh_contexts(
            floor_block_of(_stand_ins.EmptyContextManager())
        ),
        job(FIRST, CONTEXT_VARIABLE): lambda: in_fresh_contexts(
            floor_block_of(_stand_ins.ContextVariableSetter())
        ),
    }
    for candidate in classes:
        makers[job(NO_POOL, candidate)] = lambda c=candidate: async_with(dgram(c))
        makers[job(FIRST, candidate)] = lambda c=candidate: in_fresh_contexts(block_of(dgram(c)))
        makers[job(FIRST_ASYNC, candidate)] = lambda c=candidate: steps_in_fresh_contexts(
            async_block_of(dgram(c))
        )
    for candidate in (*classes, ASYNC_HELPER):
        makers[job(POOLED, candidate)] = lambda c=candidate: async_with(pool(c))
    loops = {name: makers[name]() for name in names}

    def close() -> None:
        for manager in pooled:
            manager.close_idle()
        event_loop.close()

    return loops, close


def instructions(
    address: Tuple[str, int], stand_ins_dir: str, n: int = DEFAULT_N, python: str = sys.executable
) -> Dict[str, float]:
    """Instructions per operation above an empty loop in a coroutine, by job (callgrind)."""
    import callgrind

    return callgrind.count_script(__file__, address, jobs(), EMPTY, n, python, stand_ins_dir)


def measure(
    stand_ins_dir: str, address: Tuple[str, int], n: int = DEFAULT_N, python: str = sys.executable
) -> Tuple[Dict[Tuple[str, str], float], Dict[str, float]]:
    """(callgrind.measure's counts, this module's): their three child processes side by side."""
    import callgrind

    compiled = lazyconnection.CLazyConnection is not None
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(instructions, address, stand_ins_dir, n, python)
        sync = callgrind.measure(stand_ins_dir, n, python, compiled=compiled)
        return sync, counted.result()


def later_with(sync: Dict[Tuple[str, str], float]) -> Dict[str, float]:
    """The overhead per `with` in one context, by candidate, from callgrind.measure's counts
    (real UDP socket): what a context's first `with` is compared with."""
    import callgrind

    overhead = callgrind.overheads(sync)
    return {c: value for (sockets, c), value in overhead.items() if sockets == callgrind.REAL}


def expected() -> List[Tuple[str, str, str]]:
    """The (group, what, of) of every figure `figures` gives on this interpreter."""
    classes = [c for c in (COMPILED, PURE) if c in _classes()]
    keys = [(ASYNC_COUNTED, OVERHEAD, c) for c in (*classes, FLOOR)]
    keys += [(ASYNC_REUSE_COUNTED, "per checkout+return", c) for c in (*classes, ASYNC_HELPER)]
    for kind in (FIRST, FIRST_ASYNC):
        keys += [(FIRST_COUNTED, FIRST_OVERHEAD[kind], c) for c in classes]
        keys += [(FIRST_COUNTED, FIRST_RATIO[kind], c) for c in classes]
    keys += [(FIRST_COUNTED, VARIABLE_COST, "")]
    if COMPILED in classes:
        keys += [(FIRST_COUNTED, VARIABLE_RATIO, COMPILED)]
        keys += [(ASYNC_COUNTED, f"compiled / {o}", "") for o in (FLOOR, PURE)]
        keys += [(ASYNC_REUSE_COUNTED, f"compiled / {o}", "") for o in (ASYNC_HELPER, PURE)]
    return keys


def overheads(counts: Dict[str, float]) -> Dict[str, float]:
    """Each no-pool and first-`with` job's instructions above the same calls made inline."""
    return {
        name: value - counts[job(name.split(": ")[0], INLINE)]
        for name, value in counts.items()
        if name.split(": ")[0] in (NO_POOL, FIRST, FIRST_ASYNC) and not name.endswith(INLINE)
    }


def figures(counts: Dict[str, float], later: Dict[str, float]) -> List[Dict[str, object]]:
    """The summary's figures from `instructions`; `later` is the overhead per `with` of each
    class in one context, by candidate (callgrind.py's, real UDP socket)."""
    from interleave import exact

    dispatch = overheads(counts)
    result: List[Dict[str, object]] = []

    def add(value: float, unit: str, group: str, what: str, of: str = "") -> None:
        result.append(exact(value, unit, group=group, what=what, of=of))

    for candidate in KINDS[NO_POOL]:
        if job(NO_POOL, candidate) in counts:
            value = counts[job(NO_POOL, candidate)]
            add(value, "instructions", ASYNC_COUNTED, "per `async with` above an empty loop",
                candidate)  # fmt: skip
    for candidate in KINDS[NO_POOL]:
        if job(NO_POOL, candidate) in dispatch:
            add(dispatch[job(NO_POOL, candidate)], "instructions", ASYNC_COUNTED, OVERHEAD,
                candidate)  # fmt: skip
    compiled = dispatch.get(job(NO_POOL, COMPILED))
    if compiled is not None:
        for other in (FLOOR, PURE):
            add(compiled / dispatch[job(NO_POOL, other)], "ratio", ASYNC_COUNTED,
                f"compiled / {other}")  # fmt: skip

    for candidate in KINDS[POOLED]:
        if job(POOLED, candidate) in counts:
            add(counts[job(POOLED, candidate)], "instructions", ASYNC_REUSE_COUNTED,
                "per checkout+return", candidate)  # fmt: skip
    if job(POOLED, COMPILED) in counts:
        for other in (ASYNC_HELPER, PURE):
            ratio = counts[job(POOLED, COMPILED)] / counts[job(POOLED, other)]
            add(ratio, "ratio", ASYNC_REUSE_COUNTED, f"compiled / {other}")

    later_async = {c: dispatch[job(NO_POOL, c)] for c in _classes() if job(NO_POOL, c) in dispatch}
    for kind, later_of in ((FIRST, later), (FIRST_ASYNC, later_async)):
        for candidate in (COMPILED, PURE):
            first = dispatch.get(job(kind, candidate))
            if first is None:
                continue
            add(first, "instructions", FIRST_COUNTED, FIRST_OVERHEAD[kind], candidate)
            if candidate in later_of:
                add(first / later_of[candidate], "ratio", FIRST_COUNTED, FIRST_RATIO[kind],
                    candidate)  # fmt: skip
    if job(FIRST, CONTEXT_VARIABLE) in dispatch:
        variable = dispatch[job(FIRST, CONTEXT_VARIABLE)] - dispatch[job(FIRST, FLOOR)]
        add(variable, "instructions", FIRST_COUNTED, VARIABLE_COST)
        if COMPILED in later:
            add(variable / later[COMPILED], "ratio", FIRST_COUNTED, VARIABLE_RATIO, COMPILED)
    return result


def table(figures: List[Dict[str, object]]) -> str:
    """These figures as a markdown table, for callgrind.py's printout."""
    import platform

    lines = [
        f"{platform.python_implementation()} {platform.python_version()}: `async with` and a"
        " context's first `with`, instructions (callgrind)",
        "",
        "| group | figure | candidate | value |",
        "| --- | --- | --- | --- |",
    ]
    for f in figures:
        value = f"{f['value']:.2f}" if f["unit"] == "ratio" else f"{f['value']:,.0f}"
        lines.append(f"| {f['group']} | {f['what']} | {f['of']} | {value} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import callgrind

    args = callgrind.script_parser(__doc__.splitlines()[0], DEFAULT_N).parse_args()
    address = (args.host, args.port)
    if args.child:
        stand_ins_dir, *names = args.child
        loops, close = _loops([*names, EMPTY], address, stand_ins_dir)
        callgrind.run_counted(loops, args.n)
        close()
        return
    import compile_stand_ins

    stand_ins_dir = os.path.dirname(compile_stand_ins.load_stand_ins().__file__)
    sync, counts = measure(stand_ins_dir, address, args.n)
    print(table(figures(counts, later_with(sync))), end="")


if __name__ == "__main__":
    main()
