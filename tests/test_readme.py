"""The README: short, its quick start on the first screen, every option in its table, and its
examples run, in order, as a reader would paste them."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import pathlib
import re

from examples import python_blocks, run_examples

import lazyconnection
from lazyconnection._settings import DEFAULT_TIMEOUT, Settings

README = pathlib.Path(__file__).parent.parent / "README.md"


def _lines() -> list[str]:
    return README.read_text().splitlines()


def _option_rows() -> dict[str, list[str]]:
    """The options table: name -> its other cells, for rows whose first cell is `name`."""
    rows = {}
    for line in _lines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_readme_has_examples():
    assert len(python_blocks(README.read_text())) >= 2  # the quick start, the implementation


def test_readme_examples_run(no_leaks, capsys):
    with no_leaks():
        run_examples(README)
    assert "LazyConnection" in capsys.readouterr().out


def test_readme_is_at_most_250_lines():
    assert len(_lines()) <= 250


def test_quick_start_ends_within_the_first_60_lines():
    lines = _lines()
    start = lines.index("## Quick start")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    assert end <= 60, f"the quick start runs to line {end}"


def test_options_table_names_every_constructor_parameter():
    fields = [field.name for field in dataclasses.fields(Settings) if field.init]
    assert list(_option_rows()) == fields  # every one, in the constructor's order


def test_options_table_gives_each_default_as_the_constructor_has_it():
    parameters = inspect.signature(lazyconnection.PyLazyConnection).parameters
    for name, (default, _) in _option_rows().items():
        value = parameters[name].default
        if value is inspect.Parameter.empty:
            assert default == "required", name
        elif value is DEFAULT_TIMEOUT:
            assert "socket.getdefaulttimeout()" in default, name
        elif isinstance(value, enum.Enum):
            assert default == f"`{value.name}`", name
        else:
            assert default == f"`{value!r}`", name


def test_readme_keeps_the_commands_ci_runs():
    text = README.read_text()
    for command in (
        'python -m pip install ".[test]" && python -m pytest',
        'python -m pip install ".[bench]" && python -m pytest benchmarks',
    ):
        assert re.search(rf"^{re.escape(command)}$", text, flags=re.MULTILINE), command


def test_readme_says_how_to_install_from_the_index_and_from_a_checkout():
    text = README.read_text()
    assert "`pip install lazyconnection`" in text
    assert "`python -m pip install .` in a checkout" in text
