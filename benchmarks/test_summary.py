"""Not a timing: a quick run, in a child process, ends with the summary naming every candidate."""

import json
import os
import subprocess
import sys

import pytest
from names import CANDIDATES

INNER = "LAZYCONNECTION_BENCH_INNER"


def test_quick_run_summary_names_every_candidate(settings, tmp_path):
    if os.environ.get(INNER):
        pytest.skip("this is the quick run being checked")
    if settings.quick:
        pytest.skip("a quick run does not start another one")
    results = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.dirname(__file__), "--quick",
         f"--results-dir={results}", "-p", "no:cacheprovider", "-q"],
        env={**os.environ, INNER: "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "lazyconnection: benchmark summary" in run.stdout
    summary = run.stdout.split("lazyconnection: benchmark summary", 1)[1]
    missing = [name for name in CANDIDATES if f"| {name} |" not in summary]
    assert missing == [], f"not in the summary: {missing}"
    assert "Performance targets" in summary
    assert (results / "summary.md").read_text() in run.stdout
    assert (results / "overhead.png").stat().st_size > 0
    assert (results / "overhead.svg").stat().st_size > 0
    latest = results / "latest.json"
    assert latest.stat().st_size < 1_000_000
    assert json.loads(latest.read_text())["lazyconnection"]["quick"] is True
