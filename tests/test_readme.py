"""The README's examples run, in order, as a reader would paste them."""

from __future__ import annotations

import importlib.util
import pathlib
import platform
import re

README = pathlib.Path(__file__).parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return [block for _, block in _blocks(text)]


def _blocks(text: str) -> list[tuple[str, str]]:
    """(needed package or "", code) for each python block; `<!-- needs: X -->` names X."""
    return re.findall(
        r"^(?:<!-- needs: (\w+) -->\n)?```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL
    )


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_readme_has_examples():
    assert len(python_blocks(README.read_text())) >= 5


def test_readme_examples_run(no_leaks, capsys):
    namespace: dict = {"__name__": "readme"}
    with no_leaks():
        for needs, block in _blocks(README.read_text()):
            if needs and not _importable(needs):
                # trustme (the TLS example) needs cryptography, which has no PyPy 3.9 build
                # here; on CPython the block runs and a missing package fails it.
                assert platform.python_implementation() != "CPython", f"{needs} is missing"
                continue
            exec(compile(block, str(README), "exec"), namespace)
    assert "LazyConnection" in capsys.readouterr().out
