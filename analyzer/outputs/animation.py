"""animation: the analysed steps' heatmaps as one looping animation.

The step pictures are palette images sharing one palette (:data:`analyzer.heatmaps.PALETTE`),
so a GIF takes them as they are: no palette to build, no frame to quantise.
"""

from __future__ import annotations

import io
from concurrent.futures import Future
from pathlib import Path

import numpy as np
from PIL import Image

from analyzer import heatmaps, output
from analyzer.outputs.registry import Context, Output, Plan, StepJob

ANIMATION = "attention_animation"
FRAME_WIDTH = 800


def frame(image: Image.Image, index: int) -> bytes:
    """One step's frame, at most FRAME_WIDTH wide, kept as a lightly compressed PNG (an encoder job, on each step).

    A step picture stays in its palette: shrunk, it is mapped back onto it (its colours are
    the palette's; only the blends at edges move to the nearest).
    """
    if image.width > FRAME_WIDTH:
        stepped = _in_step_palette(image)
        image = output.fit_width(image.convert("RGB"), FRAME_WIDTH)
        if stepped:
            image = image.quantize(palette=heatmaps.palette_image(), dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def save_gif(frames: list[bytes], path: Path, frame_ms: int) -> Path | None:
    """Write PNG-encoded frames that all use the step palette as a looping GIF, as they are.

    Returns None (nothing written) when a frame is not in that palette.
    """
    images = []
    for encoded in frames:
        with Image.open(io.BytesIO(encoded)) as image:
            image.load()
        if not _in_step_palette(image):
            return None
        images.append(image)
    target = path.with_name(f"{path.name}.gif")
    images[0].save(target, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   optimize=False, disposal=1)
    return target


def write(frames: list[bytes], path: Path, animation_format: str, frame_ms: int) -> Path:
    """The animation: a GIF of step-palette frames directly, anything else through :func:`output.save_animation`."""
    if animation_format == "gif" and frames:
        written = save_gif(frames, path, frame_ms)
        if written is not None:
            return written
    return output.save_animation(frames, path, animation_format, frame_ms)


def _in_step_palette(image: Image.Image) -> bool:
    palette = image.getpalette() if image.mode == "P" else None
    return palette is not None and np.array_equal(np.asarray(palette[:768], dtype=np.uint8),
                                                  heatmaps.PALETTE.reshape(-1))


def _per_step(plan: Plan) -> StepJob:
    return frame, ()


def _render(ctx: Context) -> Future:
    return ctx.encoders.submit(write, ctx.step_values["animation"], ctx.out / ANIMATION,
                               ctx.options.animation_format, round(1000 / ctx.options.step_fps))


OUTPUT = Output("animation", "The steps as an animation", f"{ANIMATION}.<animation format>", _render,
                per_step=_per_step)
