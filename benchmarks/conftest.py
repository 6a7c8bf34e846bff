"""Benchmark options and fixtures: interleaved rounds, loopback servers, and the summary step."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pathlib
import tempfile
from typing import Any, Dict, List

import callgrind
import compile_stand_ins
import pytest
import report
from interleave import WALL, Clock, Rounds
from names import COMPILED, PURE

import lazyconnection

HERE = pathlib.Path(__file__).parent

# The loopback servers are the test suite's own (tests/echo_server.py), loaded by path.
_spec = importlib.util.spec_from_file_location(
    "echo_server", HERE.parent / "tests" / "echo_server.py"
)
_echo_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_echo_server)
serving = _echo_server.serving

# Derived figures, appended by each group once its rounds are done; the summary reads them.
FIGURES: List[Dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lazyconnection")
    group.addoption("--quick", action="store_true", help="few rounds per group, no callgrind")
    group.addoption("--no-callgrind", action="store_true", help="skip the instruction counts")
    group.addoption(
        "--results-dir", type=pathlib.Path, default=HERE / "results", help="where results go"
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """How long each group runs: the full run is the default, --quick a first look."""

    quick: bool
    no_callgrind_because: str  # empty when the instruction counts are taken
    results: pathlib.Path

    @property
    def callgrind(self) -> bool:
        return not self.no_callgrind_because

    @property
    def rounds(self) -> int:
        """pytest-benchmark rounds per candidate; each is followed by one interleaved round."""
        return 3 if self.quick else 30

    @property
    def seconds(self) -> float:
        """No interleaved round of a group starts after this many seconds."""
        return 3.0 if self.quick else 60.0

    def new_rounds(self, loops: Dict[str, Any], clock: Clock = WALL, slices: int = 1) -> Rounds:
        return Rounds(loops, len(loops) * (self.rounds + 1), self.seconds, clock, slices)


_SETTINGS = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    """Results go to --results-dir: the JSON (summary and stats, no raw samples) and a chart."""
    quick = config.getoption("quick", False)
    results = config.getoption("results_dir", HERE / "results")
    if quick:
        no_callgrind_because = "--quick leaves the instruction counts out"
    elif config.getoption("no_callgrind", False):
        no_callgrind_because = "--no-callgrind was given"
    elif callgrind.valgrind() is None:
        no_callgrind_because = "valgrind is not on PATH"
    else:
        no_callgrind_because = ""
    config.stash[_SETTINGS] = Settings(quick, no_callgrind_because, results)
    results.mkdir(parents=True, exist_ok=True)
    if config.getoption("benchmark_json", None) is None:
        config.option.benchmark_json = results / "latest.json"


def pytest_benchmark_update_json(config, benchmarks, output_json):
    settings = config.stash[_SETTINGS]
    for bench in output_json["benchmarks"]:
        bench["stats"].pop("data", None)  # every raw sample: megabytes, and read by no one
    output_json["lazyconnection"] = {
        "figures": FIGURES,
        "quick": settings.quick,
        "callgrind": settings.callgrind,
    }
    derived = report.derive(output_json)
    config.stash[_SUMMARY] = report.render(derived)
    (settings.results / "summary.md").write_text(config.stash[_SUMMARY])
    report.chart(derived, settings.results / "overhead")


_SUMMARY = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SUMMARY in config.stash:
        terminalreporter.section("lazyconnection: benchmark summary")
        terminalreporter.write(config.stash[_SUMMARY])
        results = config.stash[_SETTINGS].results
        terminalreporter.write_line(
            f"(also in {results}/: summary.md, overhead.png and .svg, latest.json)"
        )


@pytest.fixture(scope="session")
def settings(request) -> Settings:
    return request.config.stash[_SETTINGS]


@pytest.fixture(scope="session")
def figures() -> List[Dict[str, Any]]:
    """Where each group's derived figures go to reach the summary."""
    return FIGURES


@pytest.fixture(scope="session")
def time_in_turn(settings):
    """pytest-benchmark times one candidate per operation; after each of its rounds, one
    interleaved round of the whole group is timed, which is what the summary's figures use."""

    def run(benchmark, rounds: Rounds, candidate: str, group: str, unit: str, per_call=1) -> None:
        """`unit` names what one call does: `per_call` operations (`loop(per_call)`)."""
        if candidate not in rounds.loops:
            pytest.skip(f"{candidate} is not available here")
        benchmark.group = f"{group}: time per {unit}"
        benchmark.extra_info["unit"] = f"{unit}, plus one Python call"
        benchmark.pedantic(
            functools.partial(rounds.loops[candidate], per_call),
            rounds=settings.rounds,
            warmup_rounds=1,
            iterations=max(1, rounds.sizes[candidate] // per_call),
            teardown=rounds.round,
        )

    return run


def rounds_by_key(settings, figures, loops_of, derive):
    """For a module fixture that yields from it: `rounds(key)` makes the rounds of one key
    (a transport, a host) on first use, from `loops_of[key]()`; once the module is done,
    `derive(key, rounds)` of each key that ran reaches the summary."""
    made = {}

    def rounds(key):
        if key not in made:
            made[key] = settings.new_rounds(loops_of[key]())
        return made[key]

    yield rounds
    for key, measured in made.items():
        if measured.count:
            figures.extend(derive(key, measured))


@pytest.fixture(scope="session")
def compiled_class():
    if lazyconnection.CLazyConnection is None:
        pytest.skip("the compiled class is not available here")
    return lazyconnection.CLazyConnection


@pytest.fixture(scope="session", params=[COMPILED, PURE])
def implementation(request):
    """(label, class) for each implementation."""
    if request.param == PURE:
        return request.param, lazyconnection.PyLazyConnection
    return request.param, request.getfixturevalue("compiled_class")


@pytest.fixture(scope="session")
def stand_ins():
    """_stand_ins.pyx, compiled once per interpreter and cached (Cython is in `bench`)."""
    try:
        return compile_stand_ins.load_stand_ins()
    except Exception as error:  # no compiler: reported as missing, never faked
        pytest.skip(f"could not compile the stand-ins: {error}")


@pytest.fixture(scope="session")
def tcp_address():
    """A loopback TCP server that accepts and closes, in its own process."""
    with serving("sink", "tcp") as address:
        yield address


@pytest.fixture(scope="session")
def echo_address():
    """A loopback TCP echo server in its own process: it holds connections open, and writes
    only what it was sent."""
    with serving("echo", "tcp") as address:
        yield tuple(address)


@pytest.fixture(scope="session")
def unix_path():
    """The same on a Unix socket path."""
    with tempfile.TemporaryDirectory() as directory:
        with serving("sink", "unix", os.path.join(directory, "bench.sock")) as path:
            yield path
