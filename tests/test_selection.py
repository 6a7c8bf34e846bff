"""Which implementation `lazyconnection.LazyConnection` is, and how to force pure Python."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import COMPILED_EXPECTED

import lazyconnection


def _selected_in_child(**environ: str) -> str:
    code = "import lazyconnection as l; print(l.LazyConnection.__name__, l.CLazyConnection)"
    env = {key: value for key, value in os.environ.items() if key != "LAZYCONNECTION_NO_EXTENSIONS"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_compiled_class_is_selected_where_expected(compiled_class):
    assert lazyconnection.LazyConnection is compiled_class
    assert compiled_class.__name__ == "CLazyConnection"
    # The `with` statement calls the compiled kernel's C methods, not Python functions.
    assert type(compiled_class.__enter__).__name__ == "method_descriptor"
    assert type(compiled_class.__exit__).__name__ == "method_descriptor"
    assert compiled_class.__enter__.__objclass__.__module__ == "lazyconnection._kernel_c"


def test_pure_python_is_selected_where_compiled_is_not_expected():
    if COMPILED_EXPECTED:
        assert lazyconnection.LazyConnection is lazyconnection.CLazyConnection
    else:
        assert lazyconnection.LazyConnection is lazyconnection.PyLazyConnection
        assert lazyconnection.CLazyConnection is None


def test_environment_variable_forces_pure_python():
    assert _selected_in_child(LAZYCONNECTION_NO_EXTENSIONS="1") == ("PyLazyConnection None")


def test_empty_environment_variable_does_not_force_pure_python():
    assert _selected_in_child(LAZYCONNECTION_NO_EXTENSIONS="") == _selected_in_child()


def test_the_compiled_kernel_imports_where_ip_sockets_are_refused(compiled_class, tmp_path):
    """A sandbox may allow only Unix sockets: the import must not need an AF_INET socket."""
    script = (
        "import socket\n"
        "class Refused(socket.socket):\n"
        "    def __init__(self, family=-1, *args, **kwargs):\n"
        "        if family in (-1, socket.AF_INET, socket.AF_INET6):\n"
        "            raise OSError(97, 'Address family not supported by protocol')\n"
        "        super().__init__(family, *args, **kwargs)\n"
        "socket.socket = Refused\n"
        "import lazyconnection\n"
        "assert lazyconnection.LazyConnection is lazyconnection.CLazyConnection\n"
        "from lazyconnection import _kernel_c\n"
        "assert _kernel_c.SOCKET_FIELDS_READ is False\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
