"""``wan-analyze info``: a short summary of what a store holds, read from its metadata only.

Every value taken from the store goes through :func:`analyzer.text.printable`: a store
may have been made by anyone, and its text must never drive the terminal.
"""

from __future__ import annotations

from analyzer.reader import StoreView
from analyzer.store_state import status_sentence, video_sentence
from analyzer.text import printable as p
from analyzer.text import ranges
from shared.schema import Attr


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
