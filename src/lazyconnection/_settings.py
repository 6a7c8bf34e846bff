"""What a LazyConnection is made with: one typed value holding every option, checked once."""

from __future__ import annotations

import dataclasses
import inspect
import math
import operator
import os
import socket
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple, Union

# The same object socket.create_connection uses for "the stdlib's global default".
DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

# What the socket module itself accepts as a host name in an address tuple.
_HOST_TYPES = (str, bytes, bytearray)
_IP_FAMILIES = (socket.AF_INET, getattr(socket, "AF_INET6", -1), socket.AF_UNSPEC)
# The keepalive knobs for (idle, interval, count): Linux and Windows call the first
# TCP_KEEPIDLE, macOS TCP_KEEPALIVE; None where the platform lacks any of the three.
_IDLE = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
_KNOBS = (_IDLE, getattr(socket, "TCP_KEEPINTVL", None), getattr(socket, "TCP_KEEPCNT", None))
KEEPALIVE_KNOBS: Optional[Tuple[Any, ...]] = None if None in _KNOBS else _KNOBS
# Given positionally, as socket.socket's own parameters are; every option is keyword-only.
POSITIONAL = ("address", "family", "type", "proto")
_SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}
# The integers socket calls take as a C int: family, type, proto, setsockopt's arguments.
C_INT_MIN, C_INT_MAX = -(2**31), 2**31 - 1
# The most seconds any option takes: socket.settimeout refuses more than about 2**63 ns
# (292 years), and a deadline of now + timeout must fit too. 2**32 s is 136 years.
MAX_SECONDS = float(2**32)


@dataclasses.dataclass(frozen=True, **_SLOTS)
class Settings:
    """The constructor's arguments, checked and normalised; a bad one raises, naming itself."""

    address: Any
    family: int
    type: int
    proto: int
    max_depth: Optional[int] = None
    socket_factory: Optional[Callable[..., Any]] = None
    timeout: Optional[float] = DEFAULT_TIMEOUT
    source_address: Any = None
    socket_options: Tuple[Tuple[int, int, Any], ...] = ()
    all_errors: bool = False
    ssl_context: Any = None
    server_hostname: Optional[str] = None
    on_connect: Optional[Callable[[Any], Any]] = None
    retries: int = 0
    backoff: float = 0.1
    happy_eyeballs_delay: Optional[float] = None
    tcp_nodelay: bool = False
    tcp_keepalive: Union[bool, Tuple[int, int, int], None] = None
    # Reuse: how sockets are kept between blocks, not how they are opened.
    pool_size: int = 0
    idle_timeout: Optional[float] = None
    max_lifetime: Optional[float] = None
    # Bounding: how many may be open at once, and how long a `with` waits for room.
    max_connections: Optional[int] = None
    wait_timeout: Optional[float] = None
    # Derived, not given: every option at its default and one family, so that `with` and
    # `async with` may connect inline. Worked out once here, read on every opening.
    plain: bool = dataclasses.field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        family = _as_enum(socket.AddressFamily, _c_int("family", self.family))
        checked: Dict[str, Any] = {
            "family": family,
            "type": _as_enum(socket.SocketKind, _c_int("type", self.type)),
            "proto": _c_int("proto", self.proto),
            "max_depth": _max_depth(self.max_depth),
            "socket_factory": _socket_factory(self.socket_factory),
            "address": check_address(self.address, family),
            "timeout": _timeout(self.timeout),
            "source_address": None
            if self.source_address is None
            else check_address(self.source_address, family, "source_address"),
            "socket_options": _socket_options(self.socket_options),
            "all_errors": _bool("all_errors", self.all_errors),
            "on_connect": _callable_or_none("on_connect", self.on_connect),
            "retries": _count("retries", self.retries),
            "backoff": _seconds("backoff", self.backoff),
            "happy_eyeballs_delay": _happy_eyeballs_delay(self.happy_eyeballs_delay, family),
            "tcp_nodelay": _tcp_only(
                "tcp_nodelay", _bool("tcp_nodelay", self.tcp_nodelay), family, self.type
            ),
            "tcp_keepalive": _tcp_only(
                "tcp_keepalive", _keepalive(self.tcp_keepalive), family, self.type
            ),
            "pool_size": _count("pool_size", self.pool_size),
            "idle_timeout": _positive_seconds_or_none("idle_timeout", self.idle_timeout),
            "max_lifetime": _positive_seconds_or_none("max_lifetime", self.max_lifetime),
            "max_connections": _max_connections(self.max_connections, self.pool_size),
            "wait_timeout": _wait_timeout(self.wait_timeout, self.max_connections),
        }
        checked["server_hostname"] = _server_hostname(
            checked["address"], family, self.ssl_context, self.server_hostname
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        plain = family != socket.AF_UNSPEC and all(
            getattr(self, field.name) == field.default
            for field in OPTION_FIELDS
            if field.name not in REUSE_OPTIONS
        )
        object.__setattr__(self, "plain", plain)

    def tcp_presets(self) -> Tuple[Tuple[int, int, int], ...]:
        """The (level, optname, value) triples that tcp_nodelay and tcp_keepalive stand for."""
        presets = []
        if self.tcp_nodelay:
            presets.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
        if self.tcp_keepalive is not None:
            presets.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        if isinstance(self.tcp_keepalive, tuple) and KEEPALIVE_KNOBS is not None:
            for optname, value in zip(KEEPALIVE_KNOBS, self.tcp_keepalive):
                presets.append((socket.IPPROTO_TCP, optname, value))
        return tuple(presets)

    @property
    def depth_limit(self) -> int:
        """The depth checked on every enter; unlimited, or huge, is the largest C index."""
        return sys.maxsize if self.max_depth is None else min(self.max_depth, sys.maxsize)

    def options(self) -> Dict[str, Any]:
        """The connection options, defaults included."""
        return {field.name: getattr(self, field.name) for field in OPTION_FIELDS}

    def changed(self) -> Dict[str, Any]:
        """Every keyword argument that differs from its default (what a copy is made from)."""
        return {
            field.name: getattr(self, field.name)
            for field in _GIVEN_FIELDS[len(POSITIONAL) :]
            if getattr(self, field.name) is not field.default
            and getattr(self, field.name) != field.default
        }


# The options that say how sockets are kept, not how they are opened.
REUSE_OPTIONS = frozenset(
    {"pool_size", "idle_timeout", "max_lifetime", "max_connections", "wait_timeout"}
)
_GIVEN_FIELDS = tuple(field for field in dataclasses.fields(Settings) if field.init)
OPTION_FIELDS = _GIVEN_FIELDS[len(POSITIONAL) + 2 :]


def signature(defaults: Dict[str, Any]) -> inspect.Signature:
    """The constructor's signature, from the fields: what help() and inspect show."""
    kinds = dict.fromkeys(POSITIONAL, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *(
                inspect.Parameter(
                    field.name,
                    kinds.get(field.name, inspect.Parameter.KEYWORD_ONLY),
                    default=defaults.get(field.name, _default(field)),
                    annotation=field.type,
                )
                for field in _GIVEN_FIELDS
            ),
        ]
    )


def _default(field: dataclasses.Field[Any]) -> Any:
    missing = field.default is dataclasses.MISSING
    return inspect.Parameter.empty if missing else field.default


def _max_depth(value: Any) -> Optional[int]:
    if value is None:
        return None
    value = _integer("max_depth", value)
    if value < 1:
        raise ValueError(f"max_depth must be None or at least 1, not {value}")
    return value  # type: ignore[no-any-return]


def _max_connections(value: Any, pool_size: Any) -> Optional[int]:
    if value is None:
        return None
    value = _integer("max_connections", value)
    if value < 1:
        raise ValueError(f"max_connections must be None or at least 1, not {value}")
    pool_size = operator.index(pool_size)  # checked already
    if pool_size > value:
        raise ValueError(
            f"pool_size must not exceed max_connections ({value}), not {pool_size}:"
            " idle sockets count against the limit"
        )
    return value  # type: ignore[no-any-return]


def _wait_timeout(value: Any, max_connections: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"wait_timeout must be None or a number of seconds, not {_type_name(value)}"
        )
    seconds = _finite(value)
    # Beyond threading.TIMEOUT_MAX a lock's acquire refuses it: that long is no limit anyway.
    if not 0 <= seconds <= threading.TIMEOUT_MAX:  # also refuses NaN
        raise ValueError(
            f"wait_timeout must be None or a finite number of seconds, at least 0 and at most"
            f" {threading.TIMEOUT_MAX:g}, not {value}"
        )
    if max_connections is None:
        raise ValueError("wait_timeout needs max_connections: only a limit makes `with` wait")
    return seconds


def _socket_factory(value: Any) -> Callable[..., Any]:
    if value is None:
        return socket.socket
    return _callable_or_none("socket_factory", value)  # type: ignore[no-any-return]


def _callable_or_none(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {_type_name(value)}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {_type_name(value)}")
    return value


def _count(name: str, value: Any) -> int:
    value = _integer(name, value)
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {value}")
    return value  # type: ignore[no-any-return]


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {_type_name(value)}")
    seconds = _finite(value)
    if not 0 <= seconds <= MAX_SECONDS:  # also refuses NaN
        raise ValueError(
            f"{name} must be a finite number of seconds, at least 0 and at most"
            f" {MAX_SECONDS:.0f}, not {value}"
        )
    return seconds


def _finite(value: Any) -> float:
    """The number as a float; an integer too large for one is infinite, so refused."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _positive_seconds_or_none(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be None or a number of seconds, not {_type_name(value)}")
    seconds = _finite(value)
    if not 0 < seconds <= MAX_SECONDS:  # also refuses NaN
        raise ValueError(
            f"{name} must be None or a finite number of seconds above 0, at most"
            f" {MAX_SECONDS:.0f}, not {value}"
        )
    return seconds


def _happy_eyeballs_delay(value: Any, family: int) -> Optional[float]:
    if value is None:
        return None
    delay = _seconds("happy_eyeballs_delay", value)
    if family != socket.AF_UNSPEC:  # one family gives one address: there is nothing to race
        raise ValueError("happy_eyeballs_delay needs family=AF_UNSPEC")
    return delay


def _keepalive(value: Any) -> Union[bool, Tuple[int, ...], None]:
    if value is None or value is False:  # False reads as "no keepalive", as None does
        return None
    if value is True:
        return True
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise TypeError(
            f"tcp_keepalive must be None, True or an (idle, interval, count) tuple, not {value!r}"
        )
    for part, number in zip(("idle", "interval", "count"), value):
        if not 1 <= _integer(f"tcp_keepalive {part}", number) <= C_INT_MAX:
            raise ValueError(f"tcp_keepalive {part} must be from 1 to {C_INT_MAX}, not {number}")
    if KEEPALIVE_KNOBS is None:
        raise ValueError(
            "tcp_keepalive (idle, interval, count) is not supported on this platform;"
            " use tcp_keepalive=True for the system's defaults"
        )
    return tuple(operator.index(number) for number in value)


def _tcp_only(name: str, value: Any, family: int, type: int) -> Any:
    if value and not (family in _IP_FAMILIES and type == socket.SOCK_STREAM):
        raise ValueError(f"{name} needs a TCP connection: an IP family and SOCK_STREAM")
    return value


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
        _c_int(f"socket_options[{index}] level", triple[0])
        _c_int(f"socket_options[{index}] optname", triple[1])
        if isinstance(triple[2], int) and not isinstance(triple[2], bool):  # True is 1 here
            _c_int(f"socket_options[{index}] value", triple[2])
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
        return _tls_name("server_hostname", server_hostname)
    if family in _IP_FAMILIES and address[0]:
        host = address[0]  # the name the caller gave, never an address it resolves to
        if isinstance(host, (bytes, bytearray)):
            try:
                host = host.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError(
                    f"address host {bytes(host)!r} is not ASCII, so it cannot name the TLS"
                    " server; give server_hostname"
                ) from None
        return _tls_name("address host", host)
    if ssl_context.check_hostname:
        raise ValueError("server_hostname is needed: the ssl_context checks host names")
    return None


def _tls_name(name: str, host: str) -> str:
    """A name the ssl module takes as a server's: not empty, no leading dot, no NUL, and one
    that its IDNA encoding accepts (labels of 1 to 63 characters)."""
    if not host or host.startswith(".") or "\x00" in host or not _idna_encodes(host):
        raise ValueError(
            f"{name} {host!r} cannot name a TLS server: it must not be empty, start with a"
            " dot, contain a NUL character, nor have a label IDNA refuses (empty, or longer"
            " than 63 characters)"
        )
    return host


def _idna_encodes(host: str) -> bool:
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


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
    if (host.find("\x00") if isinstance(host, str) else host.find(b"\x00")) >= 0:
        raise ValueError(f"{name} host must not contain a NUL character, not {host!r}")
    # The socket module sends a non-ASCII name through IDNA, and fails late if it cannot.
    if isinstance(host, str) and not host.isascii() and not _idna_encodes(host):
        raise ValueError(f"{name} host {host!r} cannot be encoded with IDNA")
    port = _integer(f"{name} port", port)
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} port must be in 0-65535, not {port}")
    # flowinfo is 20 bits; scope_id an unsigned 32-bit index, which the socket would mask.
    for part, value, largest in zip(("flowinfo", "scope_id"), rest, (2**20 - 1, 2**32 - 1)):
        if not 0 <= _integer(f"{name} {part}", value) <= largest:
            raise ValueError(f"{name} {part} must be in 0-{largest}, not {value}")
    return address


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):  # an int to Python, but True is no port, depth or count
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {_type_name(value)}") from None


def _c_int(name: str, value: Any) -> int:
    number = _integer(name, value)
    if not C_INT_MIN <= number <= C_INT_MAX:
        raise ValueError(f"{name} must be in {C_INT_MIN} to {C_INT_MAX} (a C int), not {number}")
    return number


def _as_enum(enum_type: Any, value: int) -> int:
    """Show AF_INET rather than 2, as socket.socket's own attributes do."""
    try:
        return enum_type(value)  # type: ignore[no-any-return]
    except ValueError:
        return value


def _type_name(value: Any) -> str:
    return type(value).__name__
