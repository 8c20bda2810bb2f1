"""Store text made safe for where it goes (file names, Markdown, matplotlib labels), and numbers as short text.

Everything here treats its input as untrusted: token strings and prompts come from
the store, which may have been made by anyone.
"""

from __future__ import annotations

import re

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#$])")
# C0 and C1 controls (ESC starts terminal escape sequences) and the bidirectional overrides
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# what Markdown renderers turn into links by themselves: scheme:// and www.
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=\bwww)(?=\.)", re.IGNORECASE)
_ZERO_WIDTH_SPACE = "\u200b"
_WORD_START = "\u2581"


def one_line(text: object) -> str:
    """``text`` as a single printable line: runs of whitespace become one space, control characters go.

    For pictures, where a removed character costs nothing; text a person reads to judge
    the store (the terminal, the report) uses :func:`printable`, which shows them.
    """
    return _CONTROL_CHARS.sub("", " ".join(str(text).split()))


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` as one line a terminal shows and never obeys: control characters as escapes such as ``\\x1b``.

    Runs of whitespace (newlines, tabs, carriage returns) become one space first, so no
    field can fake a line of its own or overwrite one; what is left of C0, DEL, C1 (ESC
    and CSI start terminal escape sequences) and the bidirectional overrides is shown
    as its Python escape, so a hostile store is seen for what it holds.
    """
    return _CONTROL_CHARS.sub(_escape, " ".join(str(text).split()))


def file_stem(text: str, index: int, prefix: str, max_length: int = 32) -> str:
    """A file name stem for the ``index``-th item called ``text``: ASCII letters, digits, _ and - only.

    The index keeps stems unique (two tokens may sanitise to the same text) and the stem
    never starts with a dot, so "../x" or "a/b" can never leave the output directory.
    """
    cleaned = _UNSAFE_FILE_CHARS.sub("_", text.replace(_WORD_START, "")).strip("_")[:max_length]
    return f"{prefix}_{index:03d}" + (f"_{cleaned}" if cleaned else "")


def markdown(text: object) -> str:
    """``text`` escaped for a Markdown paragraph or table cell, on one line, with no link of its own.

    Control characters show as escapes (:func:`printable`), whose backslash is escaped in turn.

    "&" goes first, so an entity in the text ("&lt;b&gt;") shows as typed instead of as
    markup; bare URLs get a zero-width space after "scheme:" (or "www") so no renderer links them.
    """
    line = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AUTOLINK.sub(_ZERO_WIDTH_SPACE, _MARKDOWN_SPECIAL.sub(r"\\\1", line))


def label(text: object, max_length: int = 40) -> str:
    """``text`` for a matplotlib label: :func:`plain_label`, with "$" escaped so mathtext never parses it."""
    return plain_label(text, max_length).replace("$", r"\$")


def plain_label(text: object, max_length: int = 40) -> str:
    """``text`` for a picture drawn by PIL (no markup language there): one line, shortened."""
    line = one_line(text)
    return line if len(line) <= max_length else line[: max_length - 1] + "\u2026"


def ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5": a short way to say what a store holds."""
    values = sorted(set(values))
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts) if parts else "none"


def block_label(block: int, prefix: str = "") -> str:
    """How a layer entry is named: "mean of layers" for a store that kept the mean, else ``prefix`` and the block."""
    return "mean of layers" if block < 0 else f"{prefix}{block}"
