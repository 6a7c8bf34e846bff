"""The kernels' interface: the compiled stub, the compiled kernel and the pure one agree."""

from __future__ import annotations

import ast
import inspect
import pathlib

import lazyconnection
from lazyconnection import _kernel_py

STUB = pathlib.Path(lazyconnection.__file__).parent / "_kernel_c.pyi"


def _stub_methods() -> dict[str, list[str]]:
    classes = [node for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.ClassDef)]
    (kernel,) = [cls for cls in classes if cls.name == "Kernel"]
    return {
        node.name: [arg.arg for arg in node.args.args]
        for node in kernel.body
        if isinstance(node, ast.FunctionDef)
    }


def _own_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if callable(value) and name != "__init__"}


def test_stub_describes_the_pure_kernel_method_for_method():
    pure = {
        name: list(inspect.signature(getattr(_kernel_py.Kernel, name)).parameters)
        for name in _own_methods(_kernel_py.Kernel)
        if not name.startswith("_own") and name != "_reserve_stack"
    }
    assert _stub_methods() == pure


def test_stub_names_the_compiled_kernel_methods(compiled_class):
    kernel = compiled_class.__enter__.__objclass__
    assert set(_stub_methods()) <= _own_methods(kernel)


def test_constructor_signature_is_visible(LazyConnection):
    parameters = inspect.signature(LazyConnection).parameters
    assert list(parameters)[:4] == ["address", "family", "type", "proto"]
    assert {"max_depth", "timeout", "ssl_context", "retries", "backoff"} <= set(parameters)
    assert parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY


def test_typed_example_runs(LazyConnection):
    import typing_example

    assert lazyconnection.PyLazyConnection in typing_example.implementations()
    conn = typing_example.configured(("127.0.0.1", 9))
    assert typing_example.describe(conn) == (0, None, ())
