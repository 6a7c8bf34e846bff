"""Instructions per `with` from callgrind: exact dispatch costs that a busy machine cannot move.

Run by the dispatch group when valgrind is on PATH, and on its own for one interpreter:

    python benchmarks/callgrind.py [--python PATH] [-n N]

prints a table for the running interpreter (or PATH's), which must import a built
lazyconnection and Cython, then the `async with` and first-`with` counts of async_counts.py,
whose child process runs beside this module's two, against a loopback server started here.
One child process per kind of socket runs every candidate under ``valgrind --tool=callgrind``:
each loop once to warm up, then with N and with 2N `with`s, callgrind dumping its counts
before each run (``--dump-before`` a marker call), so that (count(2N) - count(N)) / N is one
`with` and the interpreter's start-up (about 300 million instructions, most of the child's
time) is paid once per process, not twice per candidate. The same figure for an empty loop
is then subtracted. The sockets are real UDP sockets
(``connect`` sends nothing) or the compiled stand-in. Each candidate's dispatch overhead is
its count above the same socket calls made inline (no `with` at all); the ratios compare
those overheads.

The child runs under ``setarch $(uname -m) -R`` (address-space randomisation off) where that
works on the machine, tested once; elsewhere it runs as it is. With randomisation, where
id()-hashed objects land moves a count by a few hundred instructions from run to run.

How few `with`s are enough (CPython 3.11): from N = 300 the ratios agree to two decimals
with N = 2000, and each count to within 20 instructions (what is left varies from process
to process, as the cyclic garbage collector's passes fall); N = 10 is already within 2 %.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from socket import AF_INET, SOCK_DGRAM
from typing import Any, Callable, Dict, List, Tuple

from names import COMPILED, EMPTY_LOOP, FLOOR, INLINE, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL

REAL = "real UDP socket"
STAND_IN = "compiled stand-in"
SOCKETS = (REAL, STAND_IN)
CANDIDATES = (COMPILED, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL, FLOOR)
ADDRESS = ("127.0.0.1", 9)  # UDP connect only records the peer: nothing is sent
DEFAULT_N = 300  # see the module docstring
CHILD_TIMEOUT_SECONDS = 300


def valgrind() -> str | None:
    return shutil.which("valgrind")


@functools.cache
def no_aslr() -> List[str]:
    """The prefix that runs a command with address-space randomisation off, or nothing where
    setarch cannot do that here (tried once per process; a container may forbid it)."""
    command = ["setarch", platform.machine(), "-R"]
    try:
        subprocess.run([*command, "true"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return command


def _child_loop(candidate: str, sockets: str, stand_ins_dir: str):
    """The loop the child runs: `loop(n)` makes n `with`s of `candidate` (or n empty turns)."""
    sys.path.insert(0, stand_ins_dir)
    import _stand_ins
    import references

    import lazyconnection

    real = sockets == REAL
    factory = __import__("socket").socket if real else _stand_ins.stand_in_factory
    # The recipe calls its module's `socket(family, type)`; the thread-local version forces
    # SOCK_STREAM, read from the module when an instance is made.
    references.socket = factory
    references.SOCK_STREAM = SOCK_DGRAM
    options = {} if real else {"socket_factory": factory}
    if candidate == EMPTY_LOOP:

        def loop(n):
            for _ in range(n):
                pass

        return loop
    if candidate == INLINE:

        def loop(n):
            for _ in range(n):
                sock = factory(AF_INET, SOCK_DGRAM)
                sock.connect(ADDRESS)
                sock.close()

        return loop
    if candidate == FLOOR:
        manager = _stand_ins.EmptyContextManager()

        def loop(n):
            for _ in range(n):
                with manager:
                    sock = factory(AF_INET, SOCK_DGRAM)
                    sock.connect(ADDRESS)
                    sock.close()

        return loop
    conn = {
        COMPILED: lambda: lazyconnection.CLazyConnection(ADDRESS, AF_INET, SOCK_DGRAM, **options),
        PURE: lambda: lazyconnection.PyLazyConnection(ADDRESS, AF_INET, SOCK_DGRAM, **options),
        RECIPE_STACK: lambda: references.RecipeStackLazyConnection(ADDRESS, AF_INET, SOCK_DGRAM),
        RECIPE_THREAD_LOCAL: lambda: references.RecipeThreadLocalLazyConnection(ADDRESS),
    }[candidate]()

    def loop(n):
        for _ in range(n):
            with conn:
                pass

    return loop


# Callgrind dumps its counts each time the child enters this libc function, which nothing
# else in the child calls: one child process counts every candidate, start-up excluded.
MARK = "getppid"


def run_counted(loops: Dict[Any, Callable[[int], object]], n: int) -> None:
    """In the child: each loop warmed up with n operations, then run n and 2n times, a mark
    (os.getppid) before each run, so that each run is one dump of its own."""
    for loop in loops.values():
        for size in (n, n, 2 * n):
            os.getppid()
            loop(size)
    os.getppid()


def per_operation(jobs: List[Any], empty: Any, command: List[str], n: int) -> Dict[Any, float]:
    """Instructions per operation of each job above the `empty` job (an empty loop), from one
    child process running `command` under callgrind, which calls `run_counted` with the loops
    of `jobs` and then of `empty`, in that order: (count(2n) - count(n)) / n cancels what a
    run costs once (the mark, the loop's set-up)."""
    with tempfile.TemporaryDirectory() as directory:
        out = pathlib.Path(directory, "callgrind.out")
        subprocess.run(
            [*no_aslr(), valgrind() or "valgrind", "--tool=callgrind", f"--dump-before={MARK}",
             f"--callgrind-out-file={out}", *command],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True, capture_output=True, timeout=CHILD_TIMEOUT_SECONDS,
        )  # fmt: skip
        dumps = sorted(out.parent.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        totals = [_total(dump.read_text()) for dump in dumps]
    every = [*jobs, empty]
    if len(totals) != 1 + 3 * len(every):  # start-up, then (warm-up, n, 2n) per loop
        raise RuntimeError(f"{len(totals)} dumps for {len(every)} loops: {MARK} called elsewhere")
    per = {
        job: (totals[3 + 3 * index] - totals[2 + 3 * index]) / n for index, job in enumerate(every)
    }
    return {job: per[job] - per[empty] for job in jobs}


def script_parser(description: str, default_n: int) -> argparse.ArgumentParser:
    """The command line of a counting script against a server (reuse.py, bounded.py,
    async_counts.py): HOST PORT [-n N], and --child, with which it is its own child."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("-n", type=int, default=default_n, help="operations in the shorter run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser


def count_script(
    script: str,
    address: Tuple[str, int],
    jobs: List[str],
    empty: str,
    n: int,
    python: str,
    *arguments: str,
) -> Dict[str, float]:
    """`per_operation` for such a script, which runs as the child with --child `arguments`
    and then the jobs."""
    host, port = address
    command = [python, script, host, str(port), "-n", str(n), "--child", *arguments, *jobs]
    return per_operation(jobs, empty, command, n)


def run_made(made: Dict[str, Tuple[Callable[[int], object], Callable[[], object]]], n: int) -> None:
    """In such a child: `run_counted` over the (loop, close) pairs made, then each closed."""
    run_counted({job: loop for job, (loop, _) in made.items()}, n)
    for _, close in made.values():
        close()


def _total(text: str) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", text, flags=re.MULTILINE)
    if not match:
        raise RuntimeError("no instruction total in a callgrind dump")
    return int(match.group(1))


def measure(
    stand_ins_dir: str, n: int = DEFAULT_N, python: str = sys.executable, compiled: bool = True
) -> Dict[Tuple[str, str], float]:
    """Instructions per `with` above an empty loop, by (sockets, candidate), INLINE included:
    one child process per kind of socket, the two side by side."""
    candidates = [c for c in (*CANDIDATES, INLINE) if compiled or c != COMPILED]

    def count(sockets: str) -> Dict[Tuple[str, str], float]:
        command = [python, __file__, "--child", sockets, str(n), stand_ins_dir, *candidates]
        counts = per_operation(candidates, EMPTY_LOOP, command, n)
        return {(sockets, candidate): value for candidate, value in counts.items()}

    with ThreadPoolExecutor(max_workers=len(SOCKETS)) as pool:
        return {key: v for counts in pool.map(count, SOCKETS) for key, v in counts.items()}


def overheads(counts: Dict[Tuple[str, str], float]) -> Dict[Tuple[str, str], float]:
    """Each candidate's instructions above the same socket calls made inline: its dispatch."""
    return {
        (sockets, candidate): value - counts[(sockets, INLINE)]
        for (sockets, candidate), value in counts.items()
        if candidate != INLINE
    }


def figures(counts: Dict[Tuple[str, str], float]) -> List[Dict[str, object]]:
    """The summary's figures from `measure`: counts, overheads and compiled's ratios."""
    import names
    from interleave import exact

    groups = {REAL: names.REAL, STAND_IN: names.STAND_IN}
    result = [
        exact(value, "instructions", group=groups[sockets],
              what="per `with` above an empty loop", of=candidate)
        for (sockets, candidate), value in counts.items()
    ]  # fmt: skip
    dispatch = overheads(counts)
    result += [
        exact(value, "instructions", group=groups[sockets],
              what="overhead above the socket calls inline", of=candidate)
        for (sockets, candidate), value in dispatch.items()
    ]  # fmt: skip
    for sockets in SOCKETS:
        if (sockets, COMPILED) not in dispatch:
            continue
        for other in (PURE, RECIPE_STACK, FLOOR):
            ratio = dispatch[(sockets, COMPILED)] / dispatch[(sockets, other)]
            what = f"compiled / {other}"
            result.append(exact(ratio, "ratio", group=groups[sockets], what=what, of=""))
    return result


def table(counts: Dict[Tuple[str, str], float]) -> str:
    """Instructions per `with` by candidate, and compiled's ratio to each, for both sockets."""
    results = overheads(counts)
    lines = [
        f"{platform.python_implementation()} {platform.python_version()}: "
        "instructions per `with` (callgrind): above an empty loop, and the overhead above the"
        " same socket calls made inline",
        "",
        "| candidate | " + " | ".join(SOCKETS) + " | " + " | ".join(
            f"overhead ({sockets}) | compiled / candidate" for sockets in SOCKETS
        ) + " |",
        "| --- " * (1 + 3 * len(SOCKETS)) + "|",
    ]  # fmt: skip
    for candidate in (*CANDIDATES, INLINE):
        cells = [
            f"{counts[(sockets, candidate)]:,.0f}" if (sockets, candidate) in counts else "-"
            for sockets in SOCKETS
        ]
        for sockets in SOCKETS:
            overhead = results.get((sockets, candidate))
            compiled = results.get((sockets, COMPILED))
            cells.append("-" if overhead is None else f"{overhead:,.0f}")
            cells.append("-" if not (overhead and compiled) else f"{compiled / overhead:.2f}")
        lines.append(f"| {candidate} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="measure this interpreter instead of the running one")
    parser.add_argument("-n", type=int, default=DEFAULT_N, help="`with`s in the shorter run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sockets, n, stand_ins_dir, *candidates = args.child
        loops = {c: _child_loop(c, sockets, stand_ins_dir) for c in (*candidates, EMPTY_LOOP)}
        run_counted(loops, int(n))
        return
    if args.python:  # the table is made by, and for, that interpreter
        os.execv(args.python, [args.python, __file__, "-n", str(args.n)])
    if not valgrind():
        raise SystemExit("valgrind is not on PATH")
    import async_counts
    import compile_stand_ins
    import counts

    stand_ins_dir = os.path.dirname(compile_stand_ins.load_stand_ins().__file__)
    with counts.serving()("echo", "tcp") as address:  # for the pooled `async with`
        sync, asynchronous = async_counts.measure(stand_ins_dir, tuple(address), args.n)
    print(table(sync))
    later = async_counts.later_with(sync)
    print(async_counts.table(async_counts.figures(asynchronous, later)), end="")


if __name__ == "__main__":
    main()
