"""The summary figures drawn once per analysis: padding mass, layer profile, head entropies."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analyzer import text


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
        axes[1].set_xticks(range(len(step_indices)), [str(i) for i in step_indices], fontsize=7)
        axes[1].set_yticks(range(len(layer_blocks)), [text.block_label(b, "block ") for b in layer_blocks], fontsize=7)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("layer")
        figure.colorbar(image, ax=axes[1], label="padding mass")
    return figure


def layer_profile_figure(profile: np.ndarray, layer_blocks: list[int], unit_labels: list[str]) -> Figure:
    """Heatmap of each layer's attention share per word. profile: (layers, units), rows sum to 1."""
    width = min(max(6.0, 2.5 + 0.45 * len(unit_labels)), 24.0)
    height = min(max(3.5, 1.8 + 0.28 * len(layer_blocks)), 18.0)
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(profile, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xticks(range(len(unit_labels)), [text.label(u, 16) for u in unit_labels], rotation=60, ha="right")
    ax.set_yticks(range(len(layer_blocks)), [text.block_label(b, "block ") for b in layer_blocks], fontsize=8)
    ax.set_xlabel("word")
    ax.set_ylabel("layer")
    ax.set_title("Layer profile: share of each layer's word attention")
    figure.colorbar(image, ax=ax, label="share")
    return figure


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


def draw_and_save(draw, args: tuple, path, image_format: str):
    """Draw ``draw(*args)`` and write it with :func:`analyzer.output.save_figure` (an encoder job)."""
    from analyzer import output

    return output.save_figure(draw(*args), path, image_format)
