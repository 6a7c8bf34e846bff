"""Benchmark fixtures: both implementations, the floor, loopback servers, and the report step."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import tempfile

import pytest
import report

import lazyconnection

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"

# The loopback servers are the test suite's own (tests/echo_server.py), loaded by path.
_spec = importlib.util.spec_from_file_location(
    "echo_server", HERE.parent / "tests" / "echo_server.py"
)
_echo_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_echo_server)
serving = _echo_server.serving

# Plain measurements (not timings) that the report prints beside pytest-benchmark's tables.
MEASUREMENTS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Keep every run's JSON and histograms in benchmarks/results unless told otherwise."""
    RESULTS.mkdir(exist_ok=True)
    if config.getoption("benchmark_json", None) is None:
        config.option.benchmark_json = RESULTS / "latest.json"
    if not config.getoption("benchmark_histogram", None):
        config.option.benchmark_histogram = [str(RESULTS / "histogram")]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["measurements"] = dict(MEASUREMENTS)
    config.stash[_REPORT] = report.derive(output_json)
    (RESULTS / "report.md").write_text(report.render(config.stash[_REPORT]))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _REPORT in config.stash:
        terminalreporter.section("lazyconnection: derived figures")
        terminalreporter.write(report.render(config.stash[_REPORT]))
        terminalreporter.write_line(f"(saved in {RESULTS.relative_to(HERE.parent)}/)")


_REPORT = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def measurements() -> dict[str, float]:
    """Where plain measurements go to reach the report."""
    return MEASUREMENTS


@pytest.fixture(scope="session")
def compiled_class():
    if lazyconnection.CLazyConnection is None:
        pytest.skip("the compiled class is not available here")
    return lazyconnection.CLazyConnection


@pytest.fixture(scope="session", params=["compiled", "pure-python"])
def implementation(request):
    """(label, class) for each implementation."""
    if request.param == "pure-python":
        return request.param, lazyconnection.PyLazyConnection
    return request.param, request.getfixturevalue("compiled_class")


@pytest.fixture(scope="session")
def stand_ins():
    """_stand_ins.pyx, compiled on the spot with pyximport (Cython is in the bench extra)."""
    try:
        import pyximport

        with tempfile.TemporaryDirectory() as build_dir:
            importers = pyximport.install(build_dir=build_dir, language_level=3)
            try:
                import _stand_ins
            finally:
                pyximport.uninstall(*importers)
    except Exception as error:  # no compiler: reported as missing, never faked
        pytest.skip(f"could not compile the stand-ins: {error}")
    return _stand_ins


@pytest.fixture(scope="session")
def tcp_address():
    """A loopback TCP server that accepts and closes, in its own process."""
    with serving("sink", "tcp") as address:
        yield address


@pytest.fixture(scope="session")
def unix_path():
    """The same on a Unix socket path."""
    with tempfile.TemporaryDirectory() as directory:
        with serving("sink", "unix", os.path.join(directory, "bench.sock")) as path:
            yield path
