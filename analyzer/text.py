"""Store text made safe for where it goes: file names, Markdown, matplotlib labels.

Everything here treats its input as untrusted: token strings and prompts come from
the store, which may have been made by anyone.
"""

from __future__ import annotations

import re

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#$])")
_WORD_START = "\u2581"


def one_line(text: object) -> str:
    """``text`` as a single line: every run of whitespace (newlines included) becomes one space."""
    return " ".join(str(text).split())


def file_stem(text: str, index: int, prefix: str, max_length: int = 32) -> str:
    """A file name stem for the ``index``-th item called ``text``: ASCII letters, digits, _ and - only.

    The index keeps stems unique (two tokens may sanitise to the same text) and the stem
    never starts with a dot, so "../x" or "a/b" can never leave the output directory.
    """
    cleaned = _UNSAFE_FILE_CHARS.sub("_", text.replace(_WORD_START, "")).strip("_")[:max_length]
    return f"{prefix}_{index:03d}" + (f"_{cleaned}" if cleaned else "")


def markdown(text: object) -> str:
    """``text`` escaped for a Markdown paragraph or table cell, on one line."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))
    return escaped.replace("<", "&lt;").replace(">", "&gt;")


def label(text: object, max_length: int = 40) -> str:
    """``text`` for a matplotlib label: one line, shortened, and "$" escaped so mathtext never parses it."""
    line = one_line(text)
    if len(line) > max_length:
        line = line[: max_length - 1] + "\u2026"
    return line.replace("$", r"\$")


def plain_label(text: object, max_length: int = 40) -> str:
    """``text`` for a picture drawn by PIL (no markup language there): one line, shortened."""
    line = one_line(text)
    return line if len(line) <= max_length else line[: max_length - 1] + "\u2026"
