"""Small helpers the benchmark scripts share."""

from __future__ import annotations

import json


def write_json(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` when one was given (--json)."""
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=2, default=str)
