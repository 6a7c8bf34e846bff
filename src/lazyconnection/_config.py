"""Constructor checks and helpers shared by both implementations, written once in plain Python."""

from __future__ import annotations

import enum
import operator
import os
import socket
import sys
from typing import Any, Callable, Tuple

# What the socket module itself accepts as a host name in an address tuple.
_HOST_TYPES = (str, bytes, bytearray)

NO_OPEN_CONNECTION = "__exit__ called with no open connection in this thread, task or greenlet"
ALREADY_CONNECTED = "Already connected"

Config = Tuple[Any, int, int, int, Any, Callable[..., Any]]


def check_arguments(
    address: Any,
    family: Any,
    type: Any,
    proto: Any,
    max_depth: Any,
    socket_factory: Any,
) -> Config:
    """Return the constructor's arguments normalised, or raise naming the bad one."""
    family = _as_enum(socket.AddressFamily, _integer("family", family))
    type = _as_enum(socket.SocketKind, _integer("type", type))
    proto = _integer("proto", proto)
    if max_depth is not None:
        max_depth = _integer("max_depth", max_depth)
        if max_depth < 1:
            raise ValueError(f"max_depth must be None or at least 1, not {max_depth}")
    if socket_factory is None:
        socket_factory = socket.socket
    elif not callable(socket_factory):
        raise TypeError(
            f"socket_factory must be callable or None, not {_type_name(socket_factory)}"
        )
    return check_address(address, family), family, type, proto, max_depth, socket_factory


def depth_limit(max_depth: int | None) -> int:
    """The depth checked on every enter: unlimited is the largest C index."""
    return sys.maxsize if max_depth is None else max_depth


def check_address(address: Any, family: int) -> Any:
    """Check the address for the families whose format is known; pass others through."""
    if family == socket.AF_INET:
        return _check_ip_address(address, 2, 2, "(host, port)")
    if family == getattr(socket, "AF_INET6", None):
        return _check_ip_address(address, 2, 4, "(host, port[, flowinfo[, scope_id]])")
    if family == getattr(socket, "AF_UNIX", None):
        if isinstance(address, _HOST_TYPES):
            return address
        if isinstance(address, os.PathLike):
            return os.fspath(address)
        raise TypeError(
            f"address for AF_UNIX must be a str, bytes or path-like path, not {_type_name(address)}"
        )
    return address


def _check_ip_address(address: Any, shortest: int, longest: int, form: str) -> Any:
    if not isinstance(address, tuple) or not shortest <= len(address) <= longest:
        raise TypeError(f"address must be a tuple {form}, not {address!r}")
    host, port, *rest = address
    if not isinstance(host, _HOST_TYPES):
        raise TypeError(f"address host must be a str or bytes, not {_type_name(host)}")
    port = _integer("address port", port)
    if not 0 <= port <= 65535:
        raise ValueError(f"address port must be in 0-65535, not {port}")
    for name, value in zip(("flowinfo", "scope_id"), rest):
        if _integer(f"address {name}", value) < 0:
            raise ValueError(f"address {name} must not be negative, not {value}")
    return address


def _integer(name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {_type_name(value)}") from None


def _as_enum(enum_type: type[enum.IntEnum], value: int) -> int:
    """Show AF_INET rather than 2, as socket.socket's own attributes do."""
    try:
        return enum_type(value)
    except ValueError:
        return value


def _type_name(value: Any) -> str:
    return type(value).__name__


def describe(connection: Any, open_count: int) -> str:
    """The repr both classes share."""
    family = getattr(connection.family, "name", connection.family)
    type = getattr(connection.type, "name", connection.type)
    return (
        f"<{type_qualname(connection)} address={connection.address!r}"
        f" family={family} type={type} open={open_count}>"
    )


def type_qualname(value: Any) -> str:
    cls = value.__class__
    return f"{cls.__module__}.{cls.__qualname__}"


def rebuild(
    cls: Any,
    address: Any,
    family: int,
    type: int,
    proto: int,
    max_depth: int | None,
    socket_factory: Any,
) -> Any:
    """Unpickle or copy: the configuration only; open sockets never travel."""
    return cls(address, family, type, proto, max_depth=max_depth, socket_factory=socket_factory)


def reduce(connection: Any) -> tuple[Any, tuple[Any, ...]]:
    return rebuild, (
        connection.__class__,
        connection.address,
        connection.family,
        connection.type,
        connection.proto,
        connection.max_depth,
        connection.socket_factory,
    )
