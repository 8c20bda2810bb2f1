"""heads: the mean entropy of every head, layers x heads (the report ranks them)."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
from matplotlib.figure import Figure

from analyzer import output, text
from analyzer.outputs.registry import Context, Output

HEAD_RANKING = "head_ranking"


def head_figure(entropy: np.ndarray, layer_blocks: list[int]) -> Figure:
    """Heatmap of mean head entropy, layers x heads (lower = more focused). entropy: (layers, heads)."""
    height = min(max(3.5, 1.8 + 0.28 * len(layer_blocks)), 18.0)
    width = min(max(5.0, 2.5 + 0.35 * entropy.shape[1]), 20.0)
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(entropy, aspect="auto", interpolation="nearest", cmap="viridis_r")
    ax.set_xticks(range(entropy.shape[1]), [str(h) for h in range(entropy.shape[1])], fontsize=7)
    ax.set_yticks(range(len(layer_blocks)), [text.block_label(b, "block ") for b in layer_blocks], fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title("Head entropy over all keys (nats; lower = more focused)")
    figure.colorbar(image, ax=ax, label="mean entropy (nats)")
    return figure


def _render(ctx: Context) -> Future:
    entropy = ctx.analysis.stats.head_means()["entropy"]
    return ctx.encoders.submit(output.draw_and_save, head_figure, (entropy, ctx.analysis.layer_blocks),
                               ctx.out / HEAD_RANKING, ctx.options.image_format)


OUTPUT = Output("heads", "Head entropy (head ranking)", f"{HEAD_RANKING}.<image format>", _render)
