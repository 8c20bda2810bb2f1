"""Categorical colours that stay apart: the segmentation's word colours.

A greedy max-min pick in CIELAB (the Glasbey method): starting from a few fixed colours,
each next colour is the candidate farthest (CIE76 distance) from every colour chosen so
far. Candidates are an RGB lattice restricted to mid lightness, so that every colour
still shows when laid at 55 % over a video frame and black legend text stays readable
beside it. Deterministic and computed once, without any dependency beyond numpy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

PALETTE_SIZE = 72
# the first colours: the familiar strong hues, so that short prompts look as they always did
_SEEDS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) in 0..255 to CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    matrix = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ matrix.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def min_distance(rgb: np.ndarray) -> float:
    """The smallest CIELAB (CIE76) distance between two of the colours ``rgb`` (n, 3)."""
    lab = rgb_to_lab(rgb)
    d = np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=-1)
    d[np.diag_indices(len(lab))] = np.inf
    return float(d.min())


@lru_cache(maxsize=None)
def categorical(count: int = PALETTE_SIZE) -> np.ndarray:
    """``count`` colours (count, 3) uint8, each as far in CIELAB from the earlier ones as the lattice allows."""
    levels = np.arange(0, 256, 15)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = rgb_to_lab(grid)
    keep = (lab[:, 0] >= 30) & (lab[:, 0] <= 88)
    grid, lab = grid[keep], lab[keep]
    chosen = [np.asarray(s) for s in _SEEDS[:count]]
    nearest = np.full(len(lab), np.inf)
    for colour in chosen:
        nearest = np.minimum(nearest, np.linalg.norm(lab - rgb_to_lab(colour), axis=1))
    while len(chosen) < count:
        pick = int(np.argmax(nearest))
        chosen.append(grid[pick])
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[pick], axis=1))
    return np.asarray(chosen, dtype=np.uint8)


def text_colour(rgb) -> str:
    """Black or white, whichever reads better on ``rgb``."""
    return "black" if rgb_to_lab(np.asarray(rgb))[0] > 55 else "white"
