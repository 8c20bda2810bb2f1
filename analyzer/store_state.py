"""How far a recording got, in words: its status, its missing steps, which video frames exist.

The report and ``wan-analyze info`` say the same things; each passes the escape of its
medium (Markdown or the terminal) for the parts that come from the store.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from analyzer.reader import StoreView
from analyzer.text import ranges
from shared import schema
from shared.schema import Attr

Escape = Callable[[object], str]


def status_sentence(view: StoreView, escape: Escape) -> str:
    """One sentence on the recording's status: when and why it stopped, or that it may still be written."""
    attrs = view.attrs
    ended = attrs.get(Attr.ENDED_AT)
    at = f" at {escape(ended)}" if ended else ""
    error = attrs.get(Attr.ERROR)
    because = f": {escape(error)}" if error else ""
    status = view.status
    if status == schema.STATUS_COMPLETE:
        return f"complete: the recording finished{at}."
    if status == schema.STATUS_RECORDING:
        return ("recording: the store may still be being written (or its recorder stopped without saying so); "
                "steps completed after this read are not in it.")
    if status == schema.STATUS_INTERRUPTED:
        signal = attrs.get(Attr.INTERRUPTED_BY)
        by = f" by {escape(signal)}" if signal else ""
        return f"interrupted{by}{at}{because}; what was written before is kept."
    if status == schema.STATUS_FAILED:
        return f"failed{at}{because}."
    return f"{escape(status)} (not a status this version knows){because}."


def missing_sentence(view: StoreView) -> str:
    """The steps that are not complete, as ranges ("steps 3-852 missing"), or that none is."""
    missing = [s.index for s in view.missing_steps]
    if not missing:
        return "none: every recorded step is complete"
    word = "step" if len(missing) == 1 else "steps"
    return f"{word} {ranges(missing)} missing ({len(missing)} of {len(view.steps)} recorded)"


def video_sentence(view: StoreView) -> str:
    """Which frames of the video exist, and what says so (video_written, or the status of a 1.0 store)."""
    written = np.flatnonzero(view.video_written).tolist()
    count = view.num_video_frames
    source = view.video_written_source
    if count and len(written) == count:
        return f"all {count} frames written ({source})"
    if not written:
        return f"absent: none of the {count} frames written ({source})"
    not_written = np.flatnonzero(~np.asarray(view.video_written, dtype=bool)).tolist()
    return (f"partial: frames {ranges(written)} of {count} written, frames {ranges(not_written)} not recorded "
            f"({source})")
