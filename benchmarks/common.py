"""Small helpers the benchmark scripts share."""

from __future__ import annotations

import json
import os


def folder_bytes(path: str) -> int:
    """Bytes of every file under ``path`` (what a store costs on disk)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def write_json(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` when one was given (--json)."""
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=2, default=str)
