"""Head ranking from the per-head summaries the recorder keeps for every head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeadStat:
    layer_block: int
    head: int
    entropy: float  # mean over steps of the head's mean query entropy over all keys (nats)
    padding: float  # mean over steps of the head's mean padding mass
    top_token: int  # token with the largest mean probability for this head
    top_token_mass: float


def rank_heads(mean_entropy: np.ndarray, mean_mass: np.ndarray, mean_padding: np.ndarray,
               layer_blocks: list[int]) -> list[HeadStat]:
    """All heads, most focused (lowest entropy) first.

    Means over the analysed steps: entropy, padding (layers, heads); token mass (layers, heads, tokens).
    """
    stats = []
    for layer, block in enumerate(layer_blocks):
        for head in range(mean_entropy.shape[1]):
            top = int(np.argmax(mean_mass[layer, head]))
            stats.append(HeadStat(block, head, float(mean_entropy[layer, head]), float(mean_padding[layer, head]),
                                  top, float(mean_mass[layer, head, top])))
    return sorted(stats, key=lambda s: (s.entropy, s.layer_block, s.head))
