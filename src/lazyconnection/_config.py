"""Constructor checks and helpers shared by both implementations, written once in plain Python."""

from __future__ import annotations

import enum
import operator
import os
import socket
import sys
from typing import Any, Callable, Dict, Optional, Tuple

from ._opening import DEFAULT_OPTIONS, DEFAULT_TIMEOUT, Opener

# What the socket module itself accepts as a host name in an address tuple.
_HOST_TYPES = (str, bytes, bytearray)
_IP_FAMILIES = (socket.AF_INET, getattr(socket, "AF_INET6", -1), socket.AF_UNSPEC)

NO_OPEN_CONNECTION = "__exit__ called with no open connection in this thread, task or greenlet"
ALREADY_CONNECTED = "Already connected"

Config = Tuple[Any, int, int, int, Any, Callable[..., Any], Optional[Opener]]


def check_arguments(
    address: Any,
    family: Any,
    type: Any,
    proto: Any,
    max_depth: Any,
    socket_factory: Any,
    **options: Any,
) -> Config:
    """Return the constructor's arguments normalised, or raise naming the bad one.

    The last item is the Opener for the connection options, or None where every option
    has its default and the fast path applies.
    """
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
    address = check_address(address, family)
    options = _check_options(address, family, options)
    opener = None
    if family == socket.AF_UNSPEC or options != DEFAULT_OPTIONS:
        opener = Opener(address, family, type, proto, socket_factory, options)
    return address, family, type, proto, max_depth, socket_factory, opener


def _check_options(address: Any, family: int, options: Dict[str, Any]) -> Dict[str, Any]:
    checked = dict(DEFAULT_OPTIONS)
    checked.update(options)
    checked["timeout"] = _timeout(checked["timeout"])
    if checked["source_address"] is not None:
        checked["source_address"] = check_address(
            checked["source_address"], family, "source_address"
        )
    checked["socket_options"] = _socket_options(checked["socket_options"])
    if not isinstance(checked["all_errors"], bool):
        raise TypeError(f"all_errors must be a bool, not {_type_name(checked['all_errors'])}")
    checked["server_hostname"] = _server_hostname(
        address, family, checked["ssl_context"], checked["server_hostname"]
    )
    if checked["on_connect"] is not None and not callable(checked["on_connect"]):
        raise TypeError(
            f"on_connect must be callable or None, not {_type_name(checked['on_connect'])}"
        )
    checked["retries"] = _integer("retries", checked["retries"])
    if checked["retries"] < 0:
        raise ValueError(f"retries must not be negative, not {checked['retries']}")
    checked["backoff"] = _seconds("backoff", checked["backoff"])
    return checked


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {_type_name(value)}")
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{name} must not be negative, not {value}")
    return float(value)


def _timeout(value: Any) -> Any:
    if value is None or value is DEFAULT_TIMEOUT:
        return value
    return _seconds("timeout", value)


def _socket_options(value: Any) -> Tuple[Tuple[int, int, Any], ...]:
    try:
        triples = tuple(value)
    except TypeError:
        raise TypeError(
            "socket_options must be an iterable of (level, optname, value) triples,"
            f" not {_type_name(value)}"
        ) from None
    for index, triple in enumerate(triples):
        if (
            not isinstance(triple, (tuple, list))
            or len(triple) != 3
            or not isinstance(triple[2], (int, bytes, bytearray))
        ):
            raise TypeError(
                f"socket_options[{index}] must be a (level, optname, value) triple with an"
                f" integer or bytes value, not {triple!r}"
            )
        _integer(f"socket_options[{index}] level", triple[0])
        _integer(f"socket_options[{index}] optname", triple[1])
    return tuple(tuple(triple) for triple in triples)


def _server_hostname(address: Any, family: int, ssl_context: Any, server_hostname: Any) -> Any:
    if ssl_context is None:
        if server_hostname is not None:
            raise ValueError("server_hostname needs an ssl_context")
        return None
    import ssl  # only for users of TLS

    if not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {_type_name(ssl_context)}")
    if server_hostname is not None:
        if not isinstance(server_hostname, str):
            raise TypeError(
                f"server_hostname must be a str or None, not {_type_name(server_hostname)}"
            )
        return server_hostname
    if family in _IP_FAMILIES:
        host = address[0]  # the name the caller gave, never an address it resolves to
        return host.decode("ascii") if isinstance(host, (bytes, bytearray)) else host
    if ssl_context.check_hostname:
        raise ValueError("server_hostname is needed: the ssl_context checks host names")
    return None


def depth_limit(max_depth: int | None) -> int:
    """The depth checked on every enter: unlimited is the largest C index."""
    return sys.maxsize if max_depth is None else max_depth


def check_address(address: Any, family: int, name: str = "address") -> Any:
    """Check the address for the families whose format is known; pass others through."""
    if family in (socket.AF_INET, socket.AF_UNSPEC):
        return _check_ip_address(address, 2, 2, "(host, port)", name)
    if family == getattr(socket, "AF_INET6", None):
        return _check_ip_address(address, 2, 4, "(host, port[, flowinfo[, scope_id]])", name)
    if family == getattr(socket, "AF_UNIX", None):
        if isinstance(address, _HOST_TYPES):
            return address
        if isinstance(address, os.PathLike):
            return os.fspath(address)
        raise TypeError(
            f"{name} for AF_UNIX must be a str, bytes or path-like path, not {_type_name(address)}"
        )
    return address


def _check_ip_address(address: Any, shortest: int, longest: int, form: str, name: str) -> Any:
    if not isinstance(address, tuple) or not shortest <= len(address) <= longest:
        raise TypeError(f"{name} must be a tuple {form}, not {address!r}")
    host, port, *rest = address
    if not isinstance(host, _HOST_TYPES):
        raise TypeError(f"{name} host must be a str or bytes, not {_type_name(host)}")
    port = _integer(f"{name} port", port)
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} port must be in 0-65535, not {port}")
    for part, value in zip(("flowinfo", "scope_id"), rest):
        if _integer(f"{name} {part}", value) < 0:
            raise ValueError(f"{name} {part} must not be negative, not {value}")
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
    cls = connection.__class__
    family = getattr(connection.family, "name", connection.family)
    type = getattr(connection.type, "name", connection.type)
    return (
        f"<{cls.__module__}.{cls.__qualname__} address={connection.address!r}"
        f" family={family} type={type} open={open_count}>"
    )


def rebuild(
    cls: Any,
    address: Any,
    family: int,
    type: int,
    proto: int,
    max_depth: Optional[int],
    socket_factory: Any,
    options: Dict[str, Any],
) -> Any:
    """Unpickle or copy: the configuration only; open sockets never travel."""
    return cls(
        address,
        family,
        type,
        proto,
        max_depth=max_depth,
        socket_factory=socket_factory,
        **options,
    )


def reduce(connection: Any) -> Tuple[Any, Tuple[Any, ...]]:
    return rebuild, (
        connection.__class__,
        connection.address,
        connection.family,
        connection.type,
        connection.proto,
        connection.max_depth,
        connection.socket_factory,
        {
            # Only what differs from the defaults: the default timeout is a sentinel
            # object that a deep copy or a pickle would not keep identical.
            name: value
            for name, value in connection.options.items()
            if not (value is DEFAULT_OPTIONS[name] or value == DEFAULT_OPTIONS[name])
        },
    )


def options_of(opener: Optional[Opener]) -> Dict[str, Any]:
    """The connection options as given (normalised), defaults included; a copy."""
    return dict(DEFAULT_OPTIONS if opener is None else opener.options)
