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


def rank_heads(entropy: np.ndarray, token_mass: np.ndarray, padding: np.ndarray,
               layer_blocks: list[int]) -> list[HeadStat]:
    """All heads, most focused (lowest entropy) first.

    entropy, padding: (steps, layers, heads); token_mass: (steps, layers, heads, tokens).
    """
    mean_entropy = entropy.mean(axis=0)
    mean_padding = padding.mean(axis=0)
    mean_mass = token_mass.mean(axis=0)
    stats = []
    for layer, block in enumerate(layer_blocks):
        for head in range(mean_entropy.shape[1]):
            top = int(np.argmax(mean_mass[layer, head]))
            stats.append(HeadStat(block, head, float(mean_entropy[layer, head]), float(mean_padding[layer, head]),
                                  top, float(mean_mass[layer, head, top])))
    return sorted(stats, key=lambda s: (s.entropy, s.layer_block, s.head))
