"""``wan-analyze info``: a short summary of what a store holds, read from its metadata only."""

from __future__ import annotations

from analyzer.reader import StoreView
from analyzer.selection import ranges
from analyzer.text import one_line
from shared.schema import Attr


def describe(location: str, branch: str = "cond") -> str:
    """A few lines: model, prompt, status, steps (complete and missing), layers, grid, tokens and words."""
    view = StoreView(location, branch)
    attrs = view.attrs
    frames, height, width = view.grid
    complete = [s.index for s in view.complete_steps]
    missing = [s.index for s in view.missing_steps]
    words = [w.text for w in view.words if not w.special and not w.punctuation]
    status = one_line(view.status) + (f" ({one_line(attrs[Attr.ERROR])})" if attrs.get(Attr.ERROR) else "")
    lines = [
        f"store:     {view.location}",
        f"schema:    {attrs.get(Attr.SCHEMA)} {attrs.get(Attr.SCHEMA_VERSION)}",
        f"status:    {status}",
        f"model:     {one_line(attrs.get(Attr.MODEL_ID))} ({one_line(attrs.get(Attr.MODEL_CLASS))})",
        f"prompt:    {one_line(view.prompt)}",
        f"video:     {attrs.get(Attr.WIDTH)}x{attrs.get(Attr.HEIGHT)} px, {attrs.get(Attr.NUM_FRAMES)} frames, "
        f"seed {attrs.get(Attr.SEED)}, guidance {attrs.get(Attr.GUIDANCE_SCALE)}",
        f"grid:      {frames} x {height} x {width} latent (F' x H' x W')",
        f"steps:     {len(view.steps)} recorded of {attrs.get(Attr.NUM_INFERENCE_STEPS)}; "
        f"complete: {ranges(complete)}; missing: {ranges(missing)}",
        f"layers:    {'mean over layers' if not view.layers_separate else ranges(view.layer_blocks)}",
        f"branches:  {', '.join(view.branches)}",
        f"tokens:    {len(view.tokens)} ({' '.join(one_line(t) for t in view.tokens[:40])}"
        f"{' ...' if len(view.tokens) > 40 else ''})",
        f"words:     {', '.join(one_line(w) for w in words)}",
    ]
    return "\n".join(lines)
