"""The viewer page: one HTML file with its script, style and data inline (no server, no network).

The template, script and style are package resources (``viewer.html``, ``viewer.js``,
``viewer.css``). Store text reaches the page only inside the JSON data block, where every
``<``, ``>`` and ``&`` is written as a ``\\u`` escape (so nothing in it can close the
script element), and the script puts it into the page with ``textContent`` only.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path

from analyzer.viewer.data import DEFAULT_BUDGET, PageData, build_page_data

# inline: no network at all; serve: the same page may fetch from the server that sent it
CSP_INLINE = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
              "connect-src 'none'; base-uri 'none'; form-action 'none'")
CSP_SERVE = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
             "connect-src 'self'; base-uri 'none'; form-action 'none'")


def _resource(name: str) -> str:
    return resources.files("analyzer.viewer").joinpath(name).read_text(encoding="utf-8")


def script_json(value) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` or line separators as such."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(data: dict, title: str, *, serve: bool = False) -> str:
    """The page, with ``data`` (the page's JSON object) inline."""
    parts = {"__CSP__": CSP_SERVE if serve else CSP_INLINE, "__TITLE__": html.escape(title, quote=True),
             "__CSS__": _resource("viewer.css"), "__JS__": _resource("viewer.js"), "__DATA__": script_json(data)}
    # one pass over the template: what is put in is never searched again
    return re.sub(r"__(CSP|TITLE|CSS|JS|DATA)__", lambda m: parts[m.group()], _resource("viewer.html"))


def write_viewer(location, out_html, *, storage_options: dict | None = None,
                 budget_bytes: int = DEFAULT_BUDGET) -> Path:
    """Write the self-contained viewer of the store at ``location`` to ``out_html``; return its path.

    The file is written next to its place and renamed into it, so a reader never sees half of it.
    """
    return write_page(build_page_data(location, storage_options=storage_options, budget_bytes=budget_bytes), out_html)


def write_page(data: PageData, out_html) -> Path:
    """Write the page of ``data`` to ``out_html`` (through a temporary file renamed into place); return its path."""
    page = render_page(data.as_json_object(), data.meta["title"])
    out = Path(out_html)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return out
