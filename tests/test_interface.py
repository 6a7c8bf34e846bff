"""The two kernels offer the same methods, and the public class shows its real signature."""

from __future__ import annotations

import inspect

import lazyconnection
from lazyconnection import _kernel_py


def _methods(cls: type) -> set[str]:
    methods = {
        name
        for name, value in vars(cls).items()
        if callable(value) or isinstance(value, staticmethod)  # not callable before 3.10
    }
    return methods - {"__init__", "__new__"}


def _kernel_of(cls: type) -> type:
    (kernel,) = [base for base in cls.__mro__ if base.__name__ == "Kernel"]
    return kernel


def test_the_kernels_offer_the_same_methods(compiled_class):
    # The compiled kernel's own helpers are C functions (cdef), invisible from Python.
    helpers = {"_own_stack", "_reserve_stack", "_reuse_for", "_expired", "_usable"}
    helpers |= {"_unlend", "_kept", "_tls_check"}
    helpers |= {"_enter_limited", "_return_limited", "_close_discarded", "_open_blocking"}
    pure = _methods(_kernel_py.Kernel) - helpers
    assert _methods(_kernel_of(compiled_class)) == pure
    assert pure == {
        "__enter__",
        "__exit__",
        "__aenter__",
        "__aexit__",
        "_enter_async",
        "_set_async",
        "_reuse",
        "_push",
        "_stack",
        "_counts",
        "_set_kernel",
        "_set_pool",
        "_caller_thread",
        "_set_limit",
        "_take_room",
        "_give_room",
        "_release",
        "_open_reserved",
        "_reuse_granted",
        "_after_fork",
        "_in_use",
    }


def test_the_public_class_adds_no_with_method(LazyConnection):
    kernel = _kernel_of(LazyConnection)
    assert LazyConnection.__enter__ is kernel.__enter__
    assert LazyConnection.__exit__ is kernel.__exit__
    assert LazyConnection.__aenter__ is kernel.__aenter__
    assert LazyConnection.__aexit__ is kernel.__aexit__


def test_constructor_signature_is_visible(LazyConnection):
    parameters = inspect.signature(LazyConnection).parameters
    assert list(parameters)[:4] == ["address", "family", "type", "proto"]
    assert {"max_depth", "timeout", "ssl_context", "retries", "backoff"} <= set(parameters)
    assert parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["retries"].default == 0


def test_typed_example_runs(LazyConnection):
    import typing_example

    assert lazyconnection.PyLazyConnection in typing_example.implementations()
    conn = typing_example.configured(("127.0.0.1", 9))
    assert typing_example.describe(conn) == (0, None, ())


def test_the_compiled_kernel_reads_socket_fields_without_calls(compiled_class):
    # Checked against a real socket at import: if CPython moved the fields, it falls back to
    # calling fileno() and gettimeout(), correct but slower, and this says so.
    from lazyconnection import _kernel_c  # type: ignore[attr-defined]

    assert _kernel_c.SOCKET_FIELDS_READ is True
