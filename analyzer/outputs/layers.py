"""layers: the layer profile, each layer's share of its word attention (a store of separate layers only)."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
from matplotlib.figure import Figure

from analyzer import output, text
from analyzer.outputs.registry import Context, Output

LAYER_PROFILE = "layer_profile"


def layer_profile_figure(profile: np.ndarray, layer_blocks: list[int], unit_labels: list[str]) -> Figure:
    """Heatmap of each layer's attention share per word. profile: (layers, units), rows sum to 1."""
    width = min(max(6.0, 2.5 + 0.45 * len(unit_labels)), 24.0)
    height = min(max(3.5, 1.8 + 0.28 * len(layer_blocks)), 18.0)
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(profile, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xticks(range(len(unit_labels)), [text.label(u, 16) for u in unit_labels], rotation=60, ha="right")
    every = max(1, len(layer_blocks) // 30)
    ax.set_yticks(range(0, len(layer_blocks), every), [text.block_label(b, "block ") for b in layer_blocks[::every]],
                  fontsize=8)
    ax.set_xlabel("word")
    ax.set_ylabel("layer")
    ax.set_title("Layer profile: share of each layer's word attention (rows sum to 1)", fontsize=11)
    figure.colorbar(image, ax=ax, label="share")
    return figure


def _render(ctx: Context) -> Future | None:
    analysis = ctx.analysis
    if analysis.layer_profile is None:  # one layer, or a store of the mean over layers: nothing to compare
        return None
    return ctx.encoders.submit(output.draw_and_save, layer_profile_figure,
                               (analysis.layer_profile, analysis.layer_blocks, [u.label for u in analysis.units]),
                               ctx.out / LAYER_PROFILE, ctx.options.image_format)


OUTPUT = Output("layers", "Layer profile", f"{LAYER_PROFILE}.<image format> (a store of separate layers)", _render)
