"""Compiles _stand_ins.pyx with pyximport into a cache kept between runs (Cython is in `bench`)."""

from __future__ import annotations

import pathlib
import sys
from types import ModuleType

HERE = pathlib.Path(__file__).parent
BUILD = HERE / "results" / "build"


def load_stand_ins(build_dir: pathlib.Path = BUILD) -> ModuleType:
    """The compiled stand-ins; rebuilt only when the .pyx changes, once per interpreter."""
    import pyximport

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    importers = pyximport.install(
        build_dir=str(build_dir / sys.implementation.cache_tag), language_level=3
    )
    try:
        import _stand_ins
    finally:
        pyximport.uninstall(*importers)
    return _stand_ins
