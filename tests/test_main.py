"""`python -m lazyconnection` says which implementation is active and why."""

from __future__ import annotations

import os
import pathlib
import platform
import subprocess
import sys

from conftest import COMPILED_EXPECTED

import lazyconnection

README = pathlib.Path(__file__).parent.parent / "README.md"


def _run(*arguments: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """`python -m lazyconnection`, in this process's environment (which may force pure Python)
    plus more."""
    return subprocess.run(
        [sys.executable, "-m", "lazyconnection", *arguments],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _run_main(**environ: str) -> list[str]:
    """Its output lines."""
    result = _run(**environ)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_prints_version_implementation_interpreter_and_benchmark_command():
    version, implementation, interpreter, benchmarks, note = _run_main()
    assert version == f"lazyconnection {lazyconnection.__version__}"
    if lazyconnection.CLazyConnection is not None:
        assert implementation == "implementation: compiled (CLazyConnection)"
    else:
        assert implementation.startswith("implementation: pure Python (PyLazyConnection): ")
    assert interpreter == (
        f"interpreter: {platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})"
    )
    command = benchmarks.split(": ", 1)[1]
    assert f"```sh\n{command}\n```" in README.read_text()
    assert "--quick" in note and "--full" in note


def test_help_answers_like_a_command_line_tool():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m lazyconnection [-h]")
    benchmarks = _run_main()[3].split(": ", 1)[1]
    assert f"\n  {benchmarks}\n" in result.stdout  # one line, to be copied


def test_refuses_unknown_arguments():
    result = _run("--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert result.stdout == ""


def test_says_when_pure_python_is_forced_by_the_environment():
    implementation = _run_main(LAZYCONNECTION_NO_EXTENSIONS="1")[1]
    if platform.python_implementation() == "CPython":
        reason = "forced by LAZYCONNECTION_NO_EXTENSIONS"
    else:
        reason = f"{platform.python_implementation()} runs the pure-Python class"
    assert implementation == f"implementation: pure Python (PyLazyConnection): {reason}"


def test_compiled_is_reported_where_expected():
    implementation = _run_main()[1]
    assert implementation.startswith("implementation: compiled") is COMPILED_EXPECTED
