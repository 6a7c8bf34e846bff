"""`python -m lazyconnection`: which implementation is active here and why, for bug reports."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import List, Optional

import lazyconnection

BENCHMARK_COMMAND = 'python -m pip install ".[bench]" && python -m pytest benchmarks'
BENCHMARK_NOTE = "about 1½ minutes; --quick for a first look, --full for the thorough run"


def active_implementation() -> str:
    """The class in use, and for pure Python the reason, in the order __init__ decides it."""
    if lazyconnection.CLazyConnection is not None:
        return "compiled (CLazyConnection)"
    interpreter = platform.python_implementation()
    if interpreter != "CPython":
        return f"pure Python (PyLazyConnection): {interpreter} runs the pure-Python class"
    if os.environ.get("LAZYCONNECTION_NO_EXTENSIONS"):
        return "pure Python (PyLazyConnection): forced by LAZYCONNECTION_NO_EXTENSIONS"
    return (
        "pure Python (PyLazyConnection): the compiled extension is not built in this"
        " installation (no compiler, or LAZYCONNECTION_NO_EXTENSIONS at build time)"
    )


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m lazyconnection",
        description="Print the version, which implementation is active here and why, the"
        " interpreter, and the benchmark command: what a bug report needs.",
        # Raw, so that the command stays on one line to be copied.
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"benchmarks, from a source checkout ({BENCHMARK_NOTE}):\n  {BENCHMARK_COMMAND}",
    )


def main(argv: Optional[List[str]] = None) -> None:
    parser().parse_args(argv)
    print(f"lazyconnection {lazyconnection.__version__}")
    print(f"implementation: {active_implementation()}")
    print(
        f"interpreter: {platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})"
    )
    print(f"benchmarks, from a source checkout: {BENCHMARK_COMMAND}")
    print(f"  ({BENCHMARK_NOTE})")


if __name__ == "__main__":
    main()
