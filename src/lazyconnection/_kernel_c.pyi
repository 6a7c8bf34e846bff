"""Types of the compiled kernel; they match the pure-Python kernel in _kernel_py.py."""

from types import TracebackType
from typing import Any, Callable, List, Optional, Type

class Caller:
    def __call__(self) -> Any: ...

class Kernel:
    def _set_kernel(
        self,
        address: Any,
        family: int,
        type: int,
        proto: int,
        factory: Callable[..., Any],
        open: Optional[Callable[[], Any]],
        depth_limit: int,
    ) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def _reserve(self) -> List[Any]: ...
    def _push(self, stack: List[Any], sock: Any) -> Any: ...
    def _stack(self) -> Optional[List[Any]]: ...
