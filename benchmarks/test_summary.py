"""Not a timing: a quick run, in a child process, ends with a summary that fits a terminal.

The quick run takes half a minute, so the default run leaves its tests out
(conftest.SUMMARY_TEST): run them by name (``python -m pytest benchmarks/test_summary.py``,
as CI does) or with --full.
"""

import json
import os
import subprocess
import sys

import pytest
import report

INNER = "LAZYCONNECTION_BENCH_INNER"
SECTION = "lazyconnection: benchmark summary"
MAX_LINES = 30
MAX_COLUMNS = report.WIDTH


@pytest.fixture(scope="module")
def quick_run(settings, tmp_path_factory):
    """(stdout, results directory) of `pytest benchmarks --quick` in a child process."""
    if os.environ.get(INNER):
        pytest.skip("this is the quick run being checked")
    if settings.quick:
        pytest.skip("a quick run does not start another one")
    results = tmp_path_factory.mktemp("results")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.dirname(__file__), "--quick",
         f"--results-dir={results}", "-p", "no:cacheprovider"],
        env={**os.environ, INNER: "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout, results


def _summary(stdout):
    """The summary's lines: after the section's title, to the line naming the full table."""
    assert SECTION in stdout
    after = stdout.split(SECTION, 1)[1].splitlines()[1:]
    end = next(i for i, line in enumerate(after) if line.startswith("Full table: "))
    return after[: end + 1]


def test_summary_fits_a_terminal(quick_run):
    lines = _summary(quick_run[0])
    assert 10 <= len(lines) <= MAX_LINES, "\n".join(lines)
    too_wide = [line for line in lines if len(line) > MAX_COLUMNS]
    assert too_wide == []


def test_summary_has_each_groups_headline_and_honest_verdicts(quick_run):
    text = "\n".join(_summary(quick_run[0]))
    for label in ("dispatch, stand-in: compiled / floor", "async with: compiled / floor",
                  "reuse: compiled / pure Python", "tcp connect: compiled / create_connection",
                  "happy eyeballs, ::1 hangs", "4 threads", "requests/s", "memory"):  # fmt: skip
        assert label in text
    verdicts = {line.split()[-1] for line in text.splitlines() if " ≤ " in line or " ≥ " in line}
    assert verdicts <= {"met", "inconclusive", "counts"}, verdicts  # "not met" ends in "met"


def test_whole_run_prints_little_and_narrow(quick_run):
    """pytest-benchmark's own tables stay in the JSON: the whole run fits a terminal too."""
    lines = quick_run[0].splitlines()
    assert len(lines) <= 150
    narrow = [line for line in lines if len(line) <= MAX_COLUMNS]
    assert len(narrow) >= 0.95 * len(lines)
    assert "Name (time in" not in quick_run[0]  # a pytest-benchmark table's heading


def test_results_hold_the_full_table_charts_and_small_json(quick_run):
    results = quick_run[1]
    full = (results / "summary.md").read_text()
    assert "every figure of this run" in full
    assert "| dispatch (timed, stand-in socket) | overhead per `with` | compiled |" in full
    for name in report.CHARTS:
        assert (results / f"{name}.png").stat().st_size > 0
        assert (results / f"{name}.svg").stat().st_size > 0
    latest = results / "latest.json"
    assert latest.stat().st_size < 1_000_000
    assert json.loads(latest.read_text())["lazyconnection"]["quick"] is True


def _spread(value, q1, q3):
    return {"value": value, "q1": q1, "q3": q3}


def test_verdict_is_inconclusive_when_the_spread_contains_the_limit():
    assert report.verdict(_spread(0.4, 0.3, 0.45), 0.5) == "met"
    assert report.verdict(_spread(0.4, 0.3, 0.6), 0.5) == "inconclusive"
    assert report.verdict(_spread(0.6, 0.45, 0.7), 0.5) == "inconclusive"
    assert report.verdict(_spread(0.6, 0.55, 0.7), 0.5) == "not met"
    assert report.verdict(_spread(0.6, None, None), 0.5) == "not met"  # a count: exact
    assert report.verdict(_spread(1.2, 1.1, 1.3), 1.0, higher_is_better=True) == "met"
    assert report.verdict(_spread(1.2, 0.9, 1.3), 1.0, higher_is_better=True) == "inconclusive"


def _version(python, *figures):
    return {"python": python, "figures": [dict(zip(("group", "what", "of"), key), value=value)
                                          for key, value in figures]}  # fmt: skip


def test_the_context_variables_column_is_said_above_1_where_the_table_shows_it():
    versions = [
        _version("3.13.0", (report.VARIABLE_KEY, 0.98)),
        _version("3.9.18", (report.VARIABLE_KEY, 2.19)),
        _version("3.10.13", (report.VARIABLE_KEY, 1.01)),
    ]
    lines = report._variable_lines(versions)
    assert lines[-1] == (
        "In this table it is above 1 on CPython 3.9.18, 3.10.13, and at most 1 on CPython 3.13.0."
    )
    assert lines[: len(report.VARIABLE_LEGEND)] == report.VARIABLE_LEGEND
    assert report._variable_lines([_version("3.11.7")]) == []
