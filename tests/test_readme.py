"""The README's examples run, in order, as a reader would paste them."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_readme_has_examples():
    assert len(python_blocks(README.read_text())) >= 5


def test_readme_examples_run(no_leaks, capsys):
    namespace: dict = {"__name__": "readme"}
    with no_leaks():
        for block in python_blocks(README.read_text()):
            exec(compile(block, str(README), "exec"), namespace)
    assert "LazyConnection" in capsys.readouterr().out
