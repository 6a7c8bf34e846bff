"""`python -m lazyconnection`: which implementation is active here and why, for bug reports."""

from __future__ import annotations

import os
import platform
import sys

import lazyconnection

BENCHMARK_COMMAND = 'python -m pip install ".[bench]" && python -m pytest benchmarks'


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


def main() -> None:
    print(f"lazyconnection {lazyconnection.__version__}")
    print(f"implementation: {active_implementation()}")
    print(
        f"interpreter: {platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})"
    )
    print(f"benchmarks, from a source checkout: {BENCHMARK_COMMAND}")


if __name__ == "__main__":
    main()
