"""``wan-analyze STORE -o OUT --follow``: the outputs of a recording that is still running, kept current.

Each round reads the store's status and its ``steps/complete`` flags; when more steps
are complete than last time, the whole analysis runs again over the steps complete at
that moment. The analysis itself reads only steps whose flag is set, and the recorder
sets a step's flag after its chunks are written, so a half-written step is never read.
It ends after the analysis that follows a final status (complete, interrupted, failed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analyzer.run import analyze
from shared import schema
from shared.schema import Attr
from shared.store import StoreError, open_store

# How long a store may be unreadable when following starts: the recorder creates its arrays one by one.
CREATION_GRACE_S = 60.0


@dataclass(frozen=True)
class Progress:
    status: str
    complete: int  # steps complete
    total: int  # steps recorded (planned)

    @property
    def final(self) -> bool:
        return self.status in schema.FINAL_STATUSES


def recording_progress(location: str | os.PathLike, storage_options: dict | None = None) -> Progress:
    """The status and the number of complete steps, read now (a local store is never read from a cached copy)."""
    root = open_store(location, storage_options)
    try:
        flags = np.asarray(root[schema.STEP_COMPLETE.path][:], dtype=bool)
        return Progress(str(root.attrs[Attr.STATUS]), int(flags.sum()), int(flags.size))
    finally:
        root.store.close()  # a zip or HDF5 file handle, opened again at the next look


def follow(location: str | os.PathLike, out_dir: str | os.PathLike, *, interval: float = 5.0,
           storage_options: dict | None = None, say: Callable[[str], None] = print,
           sleep: Callable[[float], None] = time.sleep, **options) -> dict:
    """Analyse ``location`` into ``out_dir`` each time it has new complete steps, until its status is final.

    ``options`` are :func:`analyzer.run.analyze`'s; the first analysis honours ``overwrite``,
    the later ones replace what the earlier ones wrote. Returns the last analysis's result.
    """
    shown: Progress | None = None
    written: dict = {}
    overwrite = bool(options.pop("overwrite", False))
    started = time.monotonic()
    while True:
        try:
            now = recording_progress(location, storage_options)
        except StoreError:
            # a store the recorder is still creating lacks arrays for a moment; after that, it is what it says
            if shown is not None or time.monotonic() - started > CREATION_GRACE_S:
                raise
            sleep(interval)
            continue
        news = now.complete > (shown.complete if shown else 0)
        if now != shown and (news or now.final):  # at the end, once more: the report gives the final status
            written = analyze(location, out_dir, storage_options=storage_options, overwrite=overwrite, **options)
            overwrite = True  # from now on, the files are our own
            shown = now
            say(f"follow: {now.complete} of {now.total} steps complete, status {now.status!r}; outputs refreshed")
        if now.final:
            return written
        sleep(interval)
