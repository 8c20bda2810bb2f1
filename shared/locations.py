"""Where a store lives: a directory, a zip, an HDF5 export, or a URL that fsspec reaches.

Both programs name stores the same way, and take credentials the usual way: the
environment of each filesystem (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ...) or ``--storage-option key=value``, handed to
fsspec as they are (``endpoint_url=http://...``, ``anon=true``, ``client_kwargs.region_name=...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

# fsspec protocols whose client is not in the base install, and the package that brings it.
_CLIENT_PACKAGES = {"gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs"}


class LocationError(ValueError):
    """A location or a storage option that cannot be used. One line."""


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` names a store through fsspec (``s3://``, ``gs://``, ``https://``, ...)."""
    return "://" in os.fspath(location)


def protocol(location: str) -> str:
    return location.split("://", 1)[0].lower() if is_url(location) else "file"


def parse_storage_options(pairs: Iterable[str] | dict | None) -> dict:
    """``["key=value", ...]`` as fsspec's storage options; values are JSON when they parse (true, 3, {...}).

    A dotted key sets a nested option: ``client_kwargs.region_name=eu-west-1``.
    """
    if pairs is None:
        return {}
    if isinstance(pairs, dict):
        return dict(pairs)
    options: dict = {}
    for pair in pairs:
        key, sep, text = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise LocationError(f"--storage-option takes KEY=VALUE, got {str(pair)[:80]!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        node = options
        for name in parents:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise LocationError(f"--storage-option {key}: {name} is already set to a value")
            node = child
        node[leaf] = value
    return options


def fsspec_store(url: str, storage_options: dict | None = None, read_only: bool = True):
    """A zarr ``FsspecStore`` for ``url``; a missing client package or a bad option is one LocationError."""
    from zarr.storage import FsspecStore

    try:
        return FsspecStore.from_url(url, storage_options=storage_options or None, read_only=read_only)
    except ImportError as exc:
        package = _CLIENT_PACKAGES.get(protocol(url))
        hint = f"pip install {package}" if package else "install the fsspec package for this protocol"
        raise LocationError(f"{url}: {protocol(url)}:// needs a client that is not installed ({hint}): "
                            f"{' '.join(str(exc).split())[:200]}") from None
    except (TypeError, ValueError) as exc:
        raise LocationError(f"{url}: cannot use these storage options: {' '.join(str(exc).split())[:200]}") from None
