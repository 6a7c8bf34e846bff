"""Build the compiled twin where it can be built; otherwise install the pure-Python package."""

import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

NO_EXTENSIONS = bool(os.environ.get("LAZYCONNECTION_NO_EXTENSIONS"))
REQUIRE_EXTENSIONS = bool(os.environ.get("LAZYCONNECTION_REQUIRE_EXTENSIONS"))
# LAZYCONNECTION_TRACE=1 compiles the kernel with Cython line tracing, for coverage.py and its
# Cython.Coverage plugin (`nox -s coverage`). It slows every line: never set it for wheels.
TRACE = bool(os.environ.get("LAZYCONNECTION_TRACE"))
TRACE_MACROS = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if TRACE else []
EXTENSION = Extension(
    "lazyconnection._kernel_c",
    ["src/lazyconnection/_kernel_c.pyx"],
    depends=["src/lazyconnection/_kernel_c.h"],
    define_macros=TRACE_MACROS,
)


def warn_pure_python(reason):
    print(
        f"WARNING: lazyconnection: compiled extension not built ({reason});"
        " the pure-Python implementation will be used.",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """A compile failure falls back to pure Python unless extensions are required."""

    def run(self):
        try:
            super().run()
        except Exception as error:
            self._fall_back(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            self._fall_back(error)

    def _fall_back(self, error):
        if REQUIRE_EXTENSIONS:
            raise error
        warn_pure_python(f"{type(error).__name__}: {error}".splitlines()[0])


def why_not_compiled():
    if NO_EXTENSIONS:
        return "LAZYCONNECTION_NO_EXTENSIONS is set"
    if platform.python_implementation() != "CPython":
        return f"{platform.python_implementation()} is not CPython"
    return None


class BuildPySayingWhy(build_py):
    """Say why nothing is compiled once, when the package is built (pip runs setup.py thrice)."""

    def run(self):
        if why_not_compiled():
            warn_pure_python(why_not_compiled())
        super().run()


def extensions():
    if why_not_compiled():
        return []
    from Cython.Build import cythonize

    directives = {"language_level": 3, **({"linetrace": True} if TRACE else {})}
    return cythonize([EXTENSION], compiler_directives=directives)


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPySayingWhy},
)
