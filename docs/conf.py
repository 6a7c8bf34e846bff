"""Sphinx configuration: the site in docs/, Furo, MyST Markdown, autodoc; no network at build."""

from __future__ import annotations

import re

import lazyconnection

DEFAULT_TIMEOUT = "socket.getdefaulttimeout()"  # what the timeout's default means

project = "lazyconnection"
author = "the lazyconnection authors"
copyright = "the lazyconnection authors"
release = lazyconnection.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
# _generated/ holds the text benchmarks/report.py writes, included by performance.md.
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"lazyconnection {release}"
# The charts stay where the README links them (docs/*.png); pages show them as images.

autodoc_member_order = "bysource"
# Names and defaults; the types are in the options table, one line each.
autodoc_typehints = "none"
autodoc_class_signature = "mixed"


def _readable_signature(app, what, name, obj, options, signature, return_annotation):
    """Defaults as a reader writes them: AF_INET, not AddressFamily.AF_INET; the timeout's
    sentinel (socket._GLOBAL_DEFAULT_TIMEOUT, a bare object()) by what it means."""
    if signature:
        signature = re.sub(r"<?(?:AddressFamily|SocketKind)\.(\w+)(?:: -?\d+>)?", r"\1", signature)
        signature = re.sub(r"<object object(?: at 0x[0-9a-f]+)?>", DEFAULT_TIMEOUT, signature)
    return signature, return_annotation


def setup(app):
    app.connect("autodoc-process-signature", _readable_signature)
