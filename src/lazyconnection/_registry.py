"""The slow paths both kernels share: exits from another context, and dropping dead callers."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

ALREADY_CONNECTED = "Already connected"
NO_OPEN_CONNECTION = "__exit__ called with no open connection in this thread, task or greenlet"
AMBIGUOUS = (
    "__exit__ called with no open connection in this thread, task or greenlet, and {} are open"
    " in others: which one to close is ambiguous, so none was closed"
)


def stack_elsewhere(
    stacks: Mapping[Any, List[Any]], parent: Optional[Any], exc_type: Optional[Type[BaseException]]
) -> Tuple[List[Any], Any]:
    """`__exit__` in a context that has no socket open: the stack whose innermost socket its
    enter gave out, and that socket, for the caller to take it as a normal exit does (once it
    has checked that the socket is still the innermost: the stack's owner may have moved on).

    A generator closed elsewhere (an abandoned async generator that the event loop finalizes
    in a new task, a generator closed from another thread) exits in a context other than
    the one it entered in. Its socket is the innermost of the context this one was copied
    from, or else the only socket open anywhere. Outside a generator the context this one was
    copied from keeps its sockets (a task cannot close its creator's), so the only socket
    open elsewhere must be another's, as when enter and exit run in separate callbacks.
    """
    closing_generator = exc_type is not None and issubclass(exc_type, GeneratorExit)
    stack = stacks.get(parent) if closing_generator and parent is not None else None
    if not stack:
        open_stacks = [(key, stack) for key, stack in list(stacks.items()) if stack]
        count = sum(len(stack) for _, stack in open_stacks)
        if count == 0:
            raise RuntimeError(NO_OPEN_CONNECTION)
        (key, stack), *_ = open_stacks
        if count > 1 or (key is parent and not closing_generator):
            raise RuntimeError(AMBIGUOUS.format(count) if count > 1 else NO_OPEN_CONNECTION)
    return stack, stack[-1]


def sweep(stacks: Dict[Any, Any]) -> int:
    """Drop the empty stacks of callers that are gone; return the size for the next sweep.

    Stacks are kept when emptied, so that a context's next `with` finds its own again; a
    context that ends leaves one behind, collected here, when the dict has doubled.
    """
    for key, stack in list(stacks.items()):
        if not stack and key() is None:
            stacks.pop(key, None)  # another thread may have swept it already
    return max(8, 2 * len(stacks))
