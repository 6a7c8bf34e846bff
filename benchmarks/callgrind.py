"""Instructions per `with` from callgrind: exact dispatch costs that a busy machine cannot move.

Run by the dispatch group when valgrind is on PATH, and on its own for one interpreter:

    python benchmarks/callgrind.py [--python PATH] [-n N]

prints a table for the running interpreter (or PATH's), which must import a built
lazyconnection and Cython. Each candidate runs in a child process under
``valgrind --tool=callgrind``, twice: with N and with 2N `with`s. (count(2N) - count(N)) / N
cancels the interpreter's start-up; the same figure for an empty loop is then subtracted.
The sockets are real UDP sockets (``connect`` sends nothing) or the compiled stand-in.
Each candidate's dispatch overhead is its count above the same socket calls made inline
(no `with` at all); the ratios compare those overheads.
"""

from __future__ import annotations

import argparse
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
DEFAULT_N = 2000
CHILD_TIMEOUT_SECONDS = 300


def valgrind() -> str | None:
    return shutil.which("valgrind")


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


def total(command: List[str]) -> int:
    """Instructions callgrind counts for one process running `command`."""
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "callgrind.out")
        subprocess.run(
            [valgrind() or "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             *command],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True, capture_output=True, timeout=CHILD_TIMEOUT_SECONDS,
        )  # fmt: skip
        text = pathlib.Path(out).read_text()
    match = re.search(r"^(?:summary|totals): (\d+)", text, flags=re.MULTILINE)
    if not match:
        raise RuntimeError(f"no instruction total in callgrind's output for {command}")
    return int(match.group(1))


def measure(
    stand_ins_dir: str, n: int = DEFAULT_N, python: str = sys.executable, compiled: bool = True
) -> Dict[Tuple[str, str], float]:
    """Instructions per `with` above an empty loop, by (sockets, candidate), INLINE included."""
    candidates = [c for c in (*CANDIDATES, INLINE) if compiled or c != COMPILED]
    jobs = [(sockets, c) for sockets in SOCKETS for c in candidates]

    def command(job: Tuple[str, str], size: int) -> List[str]:
        sockets, candidate = job
        return [python, __file__, "--child", candidate, sockets, str(size), stand_ins_dir]

    return per_operation(jobs, (REAL, EMPTY_LOOP), command, n)


def per_operation(
    jobs: List[Any], empty: Any, command: Callable[[Any, int], List[str]], n: int
) -> Dict[Any, float]:
    """Instructions per operation of each job above the `empty` job (an empty loop): each
    runs under callgrind with n and with 2n operations, so that start-up cancels out.
    `command(job, size)` is the command line of one run."""
    runs = [(job, size) for job in (*jobs, empty) for size in (n, 2 * n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        totals = dict(zip(runs, pool.map(lambda run: total(command(*run)), runs)))
    per = {job: (totals[job, 2 * n] - totals[job, n]) / n for job in (*jobs, empty)}
    return {job: per[job] - per[empty] for job in jobs}


def overheads(counts: Dict[Tuple[str, str], float]) -> Dict[Tuple[str, str], float]:
    """Each candidate's instructions above the same socket calls made inline: its dispatch."""
    return {
        (sockets, candidate): value - counts[(sockets, INLINE)]
        for (sockets, candidate), value in counts.items()
        if candidate != INLINE
    }


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
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        candidate, sockets, n, stand_ins_dir = args.child
        _child_loop(candidate, sockets, stand_ins_dir)(int(n))
        return
    if args.python:  # the table is made by, and for, that interpreter
        os.execv(args.python, [args.python, __file__, "-n", str(args.n)])
    if not valgrind():
        raise SystemExit("valgrind is not on PATH")
    import compile_stand_ins

    import lazyconnection

    stand_ins_dir = os.path.dirname(compile_stand_ins.load_stand_ins().__file__)
    compiled = lazyconnection.CLazyConnection is not None
    print(table(measure(stand_ins_dir, args.n, compiled=compiled)), end="")


if __name__ == "__main__":
    main()
