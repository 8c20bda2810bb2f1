"""padding: the attention that went to the pad keys, per step and per step and layer."""

from __future__ import annotations

import math
from concurrent.futures import Future

import numpy as np
from matplotlib.figure import Figure

from analyzer import output, text
from analyzer.outputs.registry import Context, Output

PADDING = "padding_mass"


def padding_figure(step_indices: list[int], padding: np.ndarray, layer_blocks: list[int]) -> Figure:
    """Mean padding mass per step (line) and per step and layer (heatmap, when there are several layers).

    padding: (steps, layers).
    """
    several = padding.shape[1] > 1
    figure = Figure(figsize=(9, 6.5 if several else 3.8), dpi=100, layout="constrained")
    axes = figure.subplots(2 if several else 1, 1, squeeze=False)[:, 0]
    axes[0].plot(step_indices, padding.mean(axis=1), marker="o", color="tab:red")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("mean padding mass")
    axes[0].set_title("Attention that went to the pad keys (mean over queries and layers)")
    axes[0].grid(alpha=0.3)
    if several:
        image = axes[1].imshow(padding.T, aspect="auto", interpolation="nearest", cmap="magma",
                               extent=(-0.5, len(step_indices) - 0.5, len(layer_blocks) - 0.5, -0.5))
        every = max(1, math.ceil(len(step_indices) / 25))
        axes[1].set_xticks(range(0, len(step_indices), every), [str(i) for i in step_indices[::every]], fontsize=7)
        rows = max(1, math.ceil(len(layer_blocks) / 30))
        axes[1].set_yticks(range(0, len(layer_blocks), rows),
                           [text.block_label(b, "block ") for b in layer_blocks[::rows]], fontsize=7)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("layer")
        axes[1].set_title("Per layer and step", fontsize=10)
        figure.colorbar(image, ax=axes[1], label="padding mass")
    return figure


def _render(ctx: Context) -> Future:
    stats = ctx.analysis.stats
    return ctx.encoders.submit(output.draw_and_save, padding_figure,
                               ([s.index for s in stats.steps], stats.padding_by_step_layer(),
                                ctx.analysis.layer_blocks), ctx.out / PADDING, ctx.options.image_format)


OUTPUT = Output("padding", "Padding mass per step and layer", f"{PADDING}.<image format>", _render)
