"""The python blocks of a Markdown page, run in order in one namespace, as a reader pastes them."""

from __future__ import annotations

import importlib.util
import pathlib
import platform
import re
from typing import Any

# `<!-- needs: X -->` on the line before a block names a package it needs (trustme).
_BLOCK = re.compile(r"^(?:<!-- needs: (\w+) -->\n)?```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[str, str, int]]:
    """(needed package or "", code, the code's first line in the file) for each block."""
    return [
        (match[1] or "", match[2], text.count("\n", 0, match.start(2)))
        for match in _BLOCK.finditer(text)
    ]


def run_examples(page: pathlib.Path) -> dict[str, Any]:
    """Exec each block; a traceback names the page and its line. Returns the namespace."""
    namespace: dict[str, Any] = {"__name__": page.stem}
    for needs, code, line in python_blocks(page.read_text()):
        if needs and importlib.util.find_spec(needs) is None:
            # trustme (the TLS examples) needs cryptography, which has no PyPy 3.9 build
            # here; on CPython the block runs and a missing package fails it.
            assert platform.python_implementation() != "CPython", f"{needs} is missing"
            continue
        exec(compile("\n" * line + code, str(page), "exec"), namespace)
    return namespace
