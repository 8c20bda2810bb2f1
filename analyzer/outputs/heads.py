"""heads: the head ranking, every head sorted by its mean entropy (most focused first), and the layers x heads map."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
from matplotlib.figure import Figure

from analyzer import output, text
from analyzer.outputs.registry import Context, Output
from analyzer.statistics import HeadStat
from shared.words import token_text

HEAD_RANKING = "head_ranking"
RANKED_SHOWN = 30  # bars in the ranking; with more heads, the most and least focused halves, the middle elided


def head_name(head: HeadStat) -> str:
    return f"{text.block_label(head.layer_block, 'block ')}, head {head.head}"


def head_figure(heads: list[HeadStat], entropy: np.ndarray, layer_blocks: list[int], tokens: list[str],
                words: dict[int, str] | None = None) -> Figure:
    """The ranking (sorted bars, each head named by layer and head, with its top token) beside the
    layers x heads map of the same entropies. heads: most focused first; entropy: (layers, heads);
    words: the word of each sub-word token, named beside a token that is only part of it."""
    words = words or {}
    count = len(heads)
    if count > RANKED_SHOWN:
        half = RANKED_SHOWN // 2
        ranked = list(enumerate(heads[:half], start=1)) + [None] + \
            list(enumerate(heads[-half:], start=count - half + 1))
    else:
        ranked = list(enumerate(heads, start=1))
    rows = len(ranked)
    height = min(max(4.5, 1.6 + 0.26 * rows, 1.8 + 0.28 * len(layer_blocks)), 16.0)
    map_width = min(max(3.5, 1.8 + 0.3 * entropy.shape[1]), 9.0)
    figure = Figure(figsize=(7.5 + map_width, height), dpi=100, layout="constrained")
    bars, grid = figure.subplots(1, 2, width_ratios=[7.5, map_width])
    y = np.arange(rows)
    values = np.array([item[1].entropy if item else np.nan for item in ranked], dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = high - low if high > low else max(abs(high) * 0.01, 1e-3)
    left, right = low - 0.1 * span, high + 0.6 * span  # the axis spans the entropies, so close heads still differ
    bars.hlines(y, left, values, color="tab:blue", alpha=0.35, linewidth=2)
    bars.plot(values, y, "o", color="tab:blue")
    labels = [f"{item[0]}. {head_name(item[1])}" if item else f"\u2026 {count - RANKED_SHOWN} more \u2026"
              for item in ranked]
    bars.set_yticks(y, labels, fontsize=8)
    bars.set_ylim(rows - 0.5, -0.5)
    for i, item in enumerate(ranked):
        if item is None:
            continue
        head = item[1]
        piece = token_text(tokens[head.top_token]) if 0 <= head.top_token < len(tokens) else "?"
        word = words.get(head.top_token, piece)
        token = text.label(piece, 14) + (f" (of \u201c{text.label(word, 16)}\u201d)" if word != piece else "")
        bars.text(head.entropy + 0.04 * span, i, f"{head.entropy:.3f}  top token: {token}", va="center", fontsize=7)
    bars.set_xlim(left, right)
    bars.set_xlabel("mean entropy over all keys (nats)")
    bars.grid(axis="x", alpha=0.3)
    shown = "every head" if count <= RANKED_SHOWN else f"the {RANKED_SHOWN // 2} most and least focused of {count}"
    bars.set_title(f"Ranking, {shown} (1 = most focused)", fontsize=10)

    image = grid.imshow(entropy, aspect="auto", interpolation="nearest", cmap="viridis_r")
    grid.set_xticks(range(entropy.shape[1]), [str(h) for h in range(entropy.shape[1])], fontsize=7)
    every = max(1, len(layer_blocks) // 30)
    grid.set_yticks(range(0, len(layer_blocks), every),
                    [text.block_label(b, "block ") for b in layer_blocks[::every]], fontsize=7)
    grid.set_xlabel("head")
    grid.set_title("Every head by layer", fontsize=10)
    figure.colorbar(image, ax=grid, label="mean entropy (nats)")
    figure.suptitle("Head ranking by mean entropy over all keys, pad keys included (nats; lower = more focused)",
                    fontsize=11)
    return figure


def _render(ctx: Context) -> Future:
    entropy = ctx.analysis.stats.head_means()["entropy"]
    return ctx.encoders.submit(output.draw_and_save, head_figure,
                               (list(ctx.analysis.heads), entropy, ctx.analysis.layer_blocks,
                                list(ctx.analysis.view.tokens),
                                {t: w.text for w in ctx.analysis.view.words for t in w.tokens}),
                               ctx.out / HEAD_RANKING, ctx.options.image_format)


OUTPUT = Output("heads", "Head ranking (mean entropy per head)", f"{HEAD_RANKING}.<image format>", _render)
