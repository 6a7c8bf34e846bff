"""Benchmark options and fixtures: interleaved rounds, loopback servers, and the summary step."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import os
import pathlib
import platform
import tempfile
import threading
import warnings
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
    group.addoption("--quick", action="store_true", help="few rounds per group, no callgrind (CI)")
    group.addoption(
        "--full", action="store_true", help="many rounds, more processes: the thorough run"
    )
    group.addoption("--no-callgrind", action="store_true", help="skip the instruction counts")
    group.addoption(
        "--tables", action="store_true", help="also print pytest-benchmark's own tables, narrow"
    )
    group.addoption(
        "--results-dir", type=pathlib.Path, default=HERE / "results", help="where results go"
    )


@dataclasses.dataclass(frozen=True)
class Mode:
    """How long each group runs, and what the run says about itself at its start."""

    name: str  # in the summary's first line
    rounds: int  # pytest-benchmark rounds per candidate; each is followed by an interleaved one
    seconds: float  # no interleaved round of a group starts after this many seconds
    workers: int  # fresh processes that time the dispatch group's rounds as well
    about: str  # how long the whole run takes on a quiet 2-core machine


# About how long on a 2-core machine with little else running: the default run took 1.5 to 2
# minutes at load average 3.5 to 5 from other jobs, 7 to 9.5 beside a CPU hog on each core.
MODES = {
    "quick": Mode("quick run", 3, 3.0, 0, "30 s"),
    "default": Mode("default run", 5, 8.0, 2, "1½ minutes"),
    "full": Mode("full run", 30, 60.0, 4, "8 minutes"),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run's mode, whether callgrind counts, and where the results go."""

    mode_key: str
    no_callgrind_because: str  # empty when the instruction counts are taken
    results: pathlib.Path

    @property
    def mode(self) -> Mode:
        return MODES[self.mode_key]

    @property
    def quick(self) -> bool:
        return self.mode_key == "quick"

    @property
    def callgrind(self) -> bool:
        return not self.no_callgrind_because

    @property
    def rounds(self) -> int:
        return self.mode.rounds

    @property
    def seconds(self) -> float:
        return self.mode.seconds

    def new_rounds(self, loops: Dict[str, Any], clock: Clock = WALL, slices: int = 1) -> Rounds:
        return Rounds(loops, len(loops) * (self.rounds + 1), self.seconds, clock, slices)


_SETTINGS = pytest.StashKey[Settings]()


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config: pytest.Config) -> None:
    """Results go to --results-dir: the JSON (summary and stats, no raw samples), the summary
    and the charts. pytest-benchmark's own tables are left to the JSON unless --tables."""
    quick, full = config.getoption("quick", False), config.getoption("full", False)
    if quick and full:
        raise pytest.UsageError("--quick and --full: choose one")
    mode_key = "quick" if quick else "full" if full else "default"
    results = config.getoption("results_dir", HERE / "results")
    if quick:
        no_callgrind_because = "--quick leaves the instruction counts out"
    elif config.getoption("no_callgrind", False):
        no_callgrind_because = "--no-callgrind was given"
    elif callgrind.valgrind() is None:
        no_callgrind_because = "valgrind is not on PATH"
    else:
        no_callgrind_because = ""
    config.stash[_SETTINGS] = Settings(mode_key, no_callgrind_because, results)
    results.mkdir(parents=True, exist_ok=True)
    if config.getoption("benchmark_json", None) is None:
        config.option.benchmark_json = results / "latest.json"
    # A run of untimed tests alone (test_summary.py) has no timings to save: not an error.
    warnings.filterwarnings("ignore", "Not saving anything, no benchmarks")
    if not hasattr(config.option, "benchmark_quiet"):
        return  # pytest-benchmark is not loaded (-p no:benchmark)
    if config.getoption("tables", False):
        config.option.benchmark_columns = config.option.benchmark_columns or [
            "median", "iqr", "rounds"
        ]  # fmt: skip
        config.option.benchmark_name = "short"
    else:
        config.option.benchmark_quiet = True


def pytest_report_header(config: pytest.Config) -> List[str]:
    settings = config.stash[_SETTINGS]
    others = ", ".join(
        f"{'no option' if key == 'default' else '--' + key}: about {mode.about}"
        for key, mode in MODES.items()
        if key != settings.mode_key
    )
    lines = [
        f"lazyconnection benchmarks, {settings.mode.name}: about {settings.mode.about} on a quiet"
        " 2-core machine",
        f"  ({others}); the summary comes at the end",
    ]
    if settings.no_callgrind_because:
        lines.append(f"  no instruction counts: {settings.no_callgrind_because}")
    return lines


_GROUPS_STARTED = pytest.StashKey[set]()
# Half a minute (a quick run in a child process): left out of the default run unless named.
SUMMARY_TEST = "test_summary.py"


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    named = any(pathlib.Path(arg.split("::")[0]).name == SUMMARY_TEST for arg in config.args)
    if config.stash[_SETTINGS].mode_key != "default" or named:
        return
    left_out = [item for item in items if "quick_run" in getattr(item, "fixturenames", ())]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


def _write(config: pytest.Config, text: str) -> None:
    """To the terminal at once, past pytest's capture, in a run of normal verbosity."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or config.get_verbosity() != 0:
        return
    with capture.global_and_fixture_disabled():
        reporter.write(text, flush=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each group says what it measures as it starts (its module docstring's first line),
    after the file name the terminal has just written."""
    started = item.config.stash.setdefault(_GROUPS_STARTED, set())
    module = getattr(item, "module", None)
    if module is None or module.__name__ in started:
        return
    started.add(module.__name__)
    if module.__doc__:
        _write(item.config, f"\n  {module.__doc__.splitlines()[0]}\n  ")


TICK_SECONDS = 10.0


@pytest.fixture
def progress(request):
    """`with progress(text):` says on the terminal at once what a long step is doing, then
    adds a dot every TICK_SECONDS until it ends, so that no stretch of the run is silent."""

    @contextlib.contextmanager
    def step(text: str):
        config = request.config
        _write(config, f"[{text} ")
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(TICK_SECONDS):
                _write(config, ".")

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            _write(config, "] ")

    return step


def pytest_benchmark_update_json(config, benchmarks, output_json):
    settings = config.stash[_SETTINGS]
    for bench in output_json["benchmarks"]:
        bench["stats"].pop("data", None)  # every raw sample: megabytes, and read by no one
    output_json["lazyconnection"] = {
        "figures": FIGURES,
        "mode": settings.mode.name,
        "quick": settings.quick,
        "callgrind": settings.callgrind,
    }
    versions = settings.results / "versions"
    counted = [f for f in FIGURES if f["group"] in report.COUNTED_GROUPS]
    if counted:  # this interpreter's row of the table by CPython version
        versions.mkdir(exist_ok=True)
        python = platform.python_version()
        row = {"python": python, "figures": counted}
        (versions / f"cpython-{python}.json").write_text(json.dumps(row, indent=1))
    derived = report.derive(output_json)
    derived["versions"] = report.versions_from(versions)
    config.stash[_SUMMARY] = report.short(derived)
    (settings.results / "summary.md").write_text(report.full(derived))
    report.charts(derived, settings.results)


_SUMMARY = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SUMMARY in config.stash:
        terminalreporter.section("lazyconnection: benchmark summary")
        terminalreporter.write(config.stash[_SUMMARY])
        results = config.stash[_SETTINGS].results
        terminalreporter.write_line(f"Full table: {results / 'summary.md'} (charts beside it)")


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


def rounds_by_key(settings, figures, loops_of, derive, clock=WALL, slices=1):
    """For a module fixture that yields from it: `rounds(key)` makes the rounds of one key
    (a transport, a host) on first use, from `loops_of[key]()`; once the module is done,
    `derive(key, rounds)` of each key that ran reaches the summary."""
    made = {}

    def rounds(key):
        if key not in made:
            made[key] = settings.new_rounds(loops_of[key](), clock, slices)
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
