"""``wan-analyze info``: a short summary of what a store holds, read from its metadata only.

Every value taken from the store goes through :func:`analyzer.text.printable`: a store
may have been made by anyone, and its text must never drive the terminal.
"""

from __future__ import annotations

import math

import numpy as np

from analyzer.reader import StoreView
from analyzer.store_state import status_sentence, video_sentence
from analyzer.text import printable as p
from analyzer.text import ranges
from shared.schema import Attr


INFO_SCHEMA = "wan-attention-info"
INFO_SCHEMA_VERSION = "1.0"


def _json_value(value):
    """A store attribute as a JSON value: numpy scalars and arrays become numbers and lists, NaN None."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_value(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def describe_json(location: str, branch: str = "cond", storage_options: dict | None = None) -> dict:
    """What :func:`describe` says, as a dict that :func:`json.dumps` writes (``wan-analyze info --json``).

    The text is the store's as it is (JSON escapes it); ``schema``/``schema_version`` name this layout.
    """
    view = StoreView(location, branch, storage_options)
    attrs = view.attrs
    frames, height, width = view.grid
    written = np.asarray(view.video_written, dtype=bool)
    return {
        "schema": INFO_SCHEMA,
        "schema_version": INFO_SCHEMA_VERSION,
        "store": str(view.location),
        "store_schema": _json_value(attrs.get(Attr.SCHEMA)),
        "store_schema_version": _json_value(attrs.get(Attr.SCHEMA_VERSION)),
        "status": view.status,
        "status_sentence": status_sentence(view, str),
        "model_id": _json_value(attrs.get(Attr.MODEL_ID)),
        "model_class": _json_value(attrs.get(Attr.MODEL_CLASS)),
        "prompt": view.prompt,
        "width": _json_value(attrs.get(Attr.WIDTH)),
        "height": _json_value(attrs.get(Attr.HEIGHT)),
        "num_frames": _json_value(attrs.get(Attr.NUM_FRAMES)),
        "seed": _json_value(attrs.get(Attr.SEED)),
        "guidance_scale": _json_value(attrs.get(Attr.GUIDANCE_SCALE)),
        "video": {"frames": int(view.num_video_frames), "written": np.flatnonzero(written).tolist(),
                  "source": str(view.video_written_source), "sentence": video_sentence(view)},
        "grid": {"frames": int(frames), "height": int(height), "width": int(width)},
        "num_inference_steps": _json_value(attrs.get(Attr.NUM_INFERENCE_STEPS)),
        "steps": {"recorded": [s.index for s in view.steps], "complete": [s.index for s in view.complete_steps],
                  "missing": [s.index for s in view.missing_steps]},
        "step_problems": {str(k): str(v) for k, v in sorted(view.step_problems.items())},
        "layers": {"separate": bool(view.layers_separate), "blocks": [int(b) for b in view.layer_blocks]},
        "branch": branch,
        "branches": list(view.branches),
        "tokens": list(view.tokens),
        "words": [{"text": w.text, "tokens": list(w.tokens), "special": bool(w.special),
                   "punctuation": bool(w.punctuation)} for w in view.words],
    }


def describe(location: str, branch: str = "cond", storage_options: dict | None = None) -> str:
    """A few lines: model, prompt, status, steps (complete and missing), video, layers, grid, tokens and words."""
    view = StoreView(location, branch, storage_options)
    attrs = view.attrs
    frames, height, width = view.grid
    complete = [s.index for s in view.complete_steps]
    missing = [s.index for s in view.missing_steps]
    words = [w.text for w in view.words if not w.special and not w.punctuation]
    lines = [
        f"store:     {p(view.location)}",
        f"schema:    {p(attrs.get(Attr.SCHEMA))} {p(attrs.get(Attr.SCHEMA_VERSION))}",
        f"status:    {status_sentence(view, p)}",
        f"model:     {p(attrs.get(Attr.MODEL_ID))} ({p(attrs.get(Attr.MODEL_CLASS))})",
        f"prompt:    {p(view.prompt)}",
        f"video:     {p(attrs.get(Attr.WIDTH))}x{p(attrs.get(Attr.HEIGHT))} px, {p(attrs.get(Attr.NUM_FRAMES))} "
        f"frames, seed {p(attrs.get(Attr.SEED))}, guidance {p(attrs.get(Attr.GUIDANCE_SCALE))}; "
        f"{p(video_sentence(view))}",
        f"grid:      {frames} x {height} x {width} latent (F' x H' x W')",
        f"steps:     {len(view.steps)} recorded of {p(attrs.get(Attr.NUM_INFERENCE_STEPS))}; "
        f"complete: {ranges(complete)}; missing: {ranges(missing)}",
    ]
    if view.step_problems:
        first = min(view.step_problems)
        lines.append(f"problems:  {len(view.step_problems)} complete step(s) with bad bookkeeping; "
                     f"the first: {p(view.step_problems[first])}")
    lines += [
        f"layers:    {'mean over layers' if not view.layers_separate else ranges(view.layer_blocks)}",
        f"branches:  {', '.join(p(b) for b in view.branches)}",
        f"tokens:    {len(view.tokens)} ({' '.join(p(t) for t in view.tokens[:40])}"
        f"{' ...' if len(view.tokens) > 40 else ''})",
        f"words:     {', '.join(p(w) for w in words)}",
    ]
    return "\n".join(lines)
