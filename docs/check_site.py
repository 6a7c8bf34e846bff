"""After `nox -s docs`: the built site names every constructor option and public member."""

from __future__ import annotations

import dataclasses
import html
import pathlib
import re
import sys

import lazyconnection
from lazyconnection._settings import Settings

# The protocol a reader uses beside the named methods: `with`, `async with`, `@conn`.
PROTOCOL = ("__enter__", "__exit__", "__aenter__", "__aexit__", "__call__")


def options() -> list[str]:
    """Every constructor parameter, from the code: the fields a caller may give."""
    return [field.name for field in dataclasses.fields(Settings) if field.init]


def public_members() -> list[str]:
    """The methods and properties of the public class, from the class itself."""
    cls = lazyconnection.PyLazyConnection
    return [name for name in dir(cls) if not name.startswith("_")] + list(PROTOCOL)


def text(page: pathlib.Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def main(site: pathlib.Path) -> None:
    api = (site / "api.html").read_text()
    guide = text(site / "options.html")
    missing = [f"option {name} (options page)" for name in options() if name not in guide]
    missing += [
        f"{name} (API reference)"
        for name in public_members()
        if f'id="lazyconnection.PyLazyConnection.{name}"' not in api
    ]
    missing += [
        f"option {name} (API reference's signature)"
        for name in options()
        if f'<span class="n"><span class="pre">{name}</span></span>' not in api
    ]
    if missing:
        raise SystemExit("the built site lacks:\n  " + "\n  ".join(missing))
    print(f"{site}: every option ({len(options())}) and member ({len(public_members())}) named")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
