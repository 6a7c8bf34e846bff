"""The compiled module's stub describes both classes, and the typed example runs."""

from __future__ import annotations

import ast
import inspect
import pathlib

import lazyconnection

STUB = pathlib.Path(lazyconnection.__file__).parent / "_connection_c.pyi"
# Dunder methods that are part of the interface; the rest come from `object`.
PROTOCOL = {
    "__init__",
    "__enter__",
    "__exit__",
    "__aenter__",
    "__aexit__",
    "__call__",
    "__reduce__",
}


def _stub_names() -> set[str]:
    (cls,) = [node for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.ClassDef)]
    return {
        node.name for node in cls.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def _public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")} | PROTOCOL


def test_stub_names_match_the_class(LazyConnection):
    assert _stub_names() == _public_names(LazyConnection)


def test_stub_signature_matches_the_pure_python_constructor():
    (cls,) = [node for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.ClassDef)]
    (init,) = [node for node in cls.body if getattr(node, "name", None) == "__init__"]
    stub_parameters = [arg.arg for arg in init.args.args + init.args.kwonlyargs]
    pure = inspect.signature(lazyconnection.PyLazyConnection.__init__).parameters
    assert stub_parameters == list(pure)


def test_typed_example_runs(LazyConnection):
    import typing_example

    assert lazyconnection.PyLazyConnection in typing_example.implementations()
    conn = typing_example.configured(("127.0.0.1", 9))
    assert typing_example.describe(conn) == (0, None, ())
