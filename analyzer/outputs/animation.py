"""animation: the analysed steps' heatmaps as one looping animation."""

from __future__ import annotations

import io
from concurrent.futures import Future

from PIL import Image

from analyzer import output
from analyzer.outputs.registry import Context, Output, Plan, StepJob

ANIMATION = "attention_animation"
FRAME_WIDTH = 800


def frame(image: Image.Image, index: int) -> bytes:
    """One step's frame, shrunk and kept as a lightly compressed PNG (an encoder job, on each step)."""
    buffer = io.BytesIO()
    output.fit_width(image, FRAME_WIDTH).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _per_step(plan: Plan) -> StepJob:
    return frame, ()


def _render(ctx: Context) -> Future:
    return ctx.encoders.submit(output.save_animation, ctx.step_values["animation"], ctx.out / ANIMATION,
                               ctx.options.animation_format, round(1000 / ctx.options.step_fps))


OUTPUT = Output("animation", "The steps as an animation", f"{ANIMATION}.<animation format>", _render,
                per_step=_per_step)
