"""The interpreter matrix and every way the package can be built: `nox -l` lists the sessions."""

from __future__ import annotations

import pathlib
import shutil
import tarfile

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

CPYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
REQUIRE_COMPILED = {"LAZYCONNECTION_REQUIRE_EXTENSIONS": "1"}
FORCE_PURE = {"LAZYCONNECTION_NO_EXTENSIONS": "1"}
CHECK_COMPILED = "import lazyconnection as l; assert l.LazyConnection is l.CLazyConnection"
CHECK_PURE = (
    "import lazyconnection as l; assert l.CLazyConnection is None;"
    " assert l.LazyConnection is l.PyLazyConnection"
)
FALLBACK_WARNING = "the pure-Python implementation will be used"
INTERRUPT_TESTS = "tests/test_interrupts.py"


def _clean_copy(session: nox.Session) -> pathlib.Path:
    """The sources without earlier builds, whose objects setuptools would reuse."""
    target = pathlib.Path(session.create_tmp()) / "source"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        ".",
        target,
        ignore=shutil.ignore_patterns(
            ".git", ".nox", "build", "dist", "*.egg-info", "*.so", "_kernel_c.c", "results"
        ),
    )
    return target


@nox.session(python=CPYTHONS)
def tests(session: nox.Session) -> None:
    """Compiled: a failed compile is fatal, and the suite fails if the compiled class is absent."""
    session.install(f"{_clean_copy(session)}[test]", env=REQUIRE_COMPILED)
    session.run("python", "-c", CHECK_COMPILED)
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def tests_pure(session: nox.Session) -> None:
    """LAZYCONNECTION_NO_EXTENSIONS at build time: no compile, pure-Python package."""
    _install_pure_and_test(session, FORCE_PURE, "LAZYCONNECTION_NO_EXTENSIONS is set")


@nox.session(python="pypy3")
def tests_pypy(session: nox.Session) -> None:
    """PyPy: no compile attempted, the pure-Python class selected."""
    session.install(f"{_clean_copy(session)}[test]")
    session.run("python", "-c", CHECK_PURE)
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def no_compiler(session: nox.Session) -> None:
    """CC=false: the build succeeds with one warning line and installs pure Python."""
    _install_pure_and_test(session, {"CC": "false"}, "CompileError")


def _install_pure_and_test(session: nox.Session, build_env: dict[str, str], why: str) -> None:
    output = session.run(
        "python", "-m", "pip", "install", "-v", f"{_clean_copy(session)}[test]",
        env=build_env, silent=True,
    )  # fmt: skip
    warnings = [line for line in output.splitlines() if FALLBACK_WARNING in line]
    assert len(warnings) == 1, f"expected one fallback warning, got {warnings}"
    assert why in warnings[0], f"the warning does not say why: {warnings[0]}"
    session.log(warnings[0].strip())
    session.run("python", "-c", CHECK_PURE)
    # The suite insists on the compiled class on CPython unless pure Python was asked for.
    session.run("pytest", *session.posargs, env=FORCE_PURE)


@nox.session(python="3.11")
def sdist(session: nox.Session) -> None:
    """Build an sdist and a wheel; the sdist alone, unpacked, builds and passes the tests."""
    session.install("build")
    dist = pathlib.Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist), str(_clean_copy(session)))
    (sdist_path,) = dist.glob("lazyconnection-*.tar.gz")
    (wheel_path,) = dist.glob("lazyconnection-*.whl")
    session.log(f"built {sdist_path.name} and {wheel_path.name}")
    unpacked = dist / "unpacked"
    with tarfile.open(sdist_path) as archive:
        archive.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    session.install(f"{source}[test]", env=REQUIRE_COMPILED)
    session.run("python", "-c", CHECK_COMPILED)
    session.chdir(source)
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff, cython-lint and mypy --strict (the package and tests/typing_example.py)."""
    session.install("ruff", "cython-lint", "pycodestyle", "mypy", ".[test]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("cython-lint", "src/lazyconnection/_kernel_c.pyx", "benchmarks/_stand_ins.pyx")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site in docs/_build/html, warnings as errors, every page built afresh;
    then docs/check_site.py: it names every constructor option and public member."""
    # Pure Python: no compile to wait for, and the API reference documents PyLazyConnection.
    session.install(".[docs]", env=FORCE_PURE)
    html = "docs/_build/html"
    session.run("sphinx-build", "-W", "--keep-going", "-E", "-b", "html", "docs", html)
    session.run("python", "docs/check_site.py", html)


@nox.session(python="3.11")
def coverage(session: nox.Session) -> None:
    """Line coverage of both twins, the compiled kernel built with Cython line tracing.

    LAZYCONNECTION_TRACE=1 (read by setup.py) adds the `linetrace` directive and the
    CYTHON_TRACE macros in this session only; the Cython.Coverage plugin (pyproject.toml)
    maps the traced lines to _kernel_c.pyx. On 3.11, as the other one-interpreter sessions
    (tracing also worked on 3.12 with Cython 3.3). The suite runs compiled, then forced pure.
    """
    source = _clean_copy(session)
    session.install("coverage", "Cython>=3.0")
    trace = {**REQUIRE_COMPILED, "LAZYCONNECTION_TRACE": "1"}
    # Editable, so the generated _kernel_c.c stays beside the .pyx where the plugin reads it.
    session.install("-e", f"{source}[test]", env=trace)
    session.chdir(source)
    session.run("python", "-c", CHECK_COMPILED)
    session.run("coverage", "erase")
    # The interrupt tests (a tracer of their own, a signal timer) would land their interrupts
    # inside coverage's tracer and Cython's line tracing. They run in every other session.
    pytest = ["pytest", "--ignore", INTERRUPT_TESTS, *session.posargs]
    session.run("coverage", "run", "--parallel-mode", "-m", *pytest)
    session.run("coverage", "run", "--parallel-mode", "-m", *pytest, env=FORCE_PURE)
    session.run("coverage", "combine")
    session.run("coverage", "report")


@nox.session(python=["3.11", "3.12"])
def bench(session: nox.Session) -> None:
    """The main job: the benchmark run, with its derived figures."""
    session.install(".[bench]")
    session.run("pytest", "benchmarks", *session.posargs)


@nox.session(python=CPYTHONS)
def counts(session: nox.Session) -> None:
    """Callgrind's counts on each CPython, for the README's table by version (needs valgrind).

    Writes benchmarks/results/versions/cpython-X.Y.Z.json (benchmarks/counts.py), which the
    benchmark run's summary and `benchmarks/report.py --readme` read.
    """
    session.install(str(_clean_copy(session)), env=REQUIRE_COMPILED)
    # The part of the `bench` extra the counts need: the stand-ins' compiler, the other pools.
    session.install("Cython>=3.0", "setuptools>=77", "redis>=5", "urllib3>=2")
    session.run("python", "-c", CHECK_COMPILED)
    session.run("python", "benchmarks/counts.py", *session.posargs)
