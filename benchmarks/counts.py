"""The counted figures of one interpreter, a row of the README's table by CPython version.

`nox -s counts` runs it on every CPython 3.9-3.13 found; the benchmark run writes its own
interpreter's row too. By hand, with lazyconnection and the `bench` extra installed:

    python benchmarks/counts.py [--out benchmarks/results/versions]

writes cpython-X.Y.Z.json there: callgrind's dispatch counts (real UDP socket and stand-in),
the `async with` and first-`with` counts (async_counts.py) and reuse counts, as the summary
reads them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform

import async_counts
import callgrind
import compile_stand_ins
import reuse

HERE = pathlib.Path(__file__).parent


def serving():
    """The test suite's loopback servers (tests/echo_server.py), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "echo_server", HERE.parent / "tests" / "echo_server.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "results" / "versions")
    args = parser.parse_args()
    if not callgrind.valgrind():
        raise SystemExit("valgrind is not on PATH")
    stand_ins_dir = os.path.dirname(compile_stand_ins.load_stand_ins().__file__)
    with serving()("echo", "tcp") as address:
        address = tuple(address)
        sync, asynchronous = async_counts.measure(stand_ins_dir, address)
        figures = callgrind.figures(sync)
        figures += async_counts.figures(asynchronous, async_counts.later_with(sync))
        figures += reuse.figures(reuse.instructions(address))
    args.out.mkdir(parents=True, exist_ok=True)
    python = platform.python_version()
    path = args.out / f"cpython-{python}.json"
    path.write_text(json.dumps({"python": python, "figures": figures}, indent=1))
    print(f"{path}: {len(figures)} counted figures")


if __name__ == "__main__":
    main()
