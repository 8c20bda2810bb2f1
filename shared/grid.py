"""Latent grid arithmetic shared by recorder and analyzer (no torch).

Wan's VAE compresses time by 4: latent frame 0 is pixel frame 0 and latent frame
f >= 1 covers pixel frames 4f-3 .. 4f. The transformer then patches the latent
(1, 2, 2), so a query sits at (f, y, x) on a grid of F' x H' x W' tokens.
"""

from __future__ import annotations


def latent_frames(num_frames: int, temporal_factor: int = 4) -> int:
    """F' for a video of ``num_frames`` pixel frames (which must be k * factor + 1)."""
    return (num_frames - 1) // temporal_factor + 1


def pixel_frames_of_latent(num_latent_frames: int, temporal_factor: int = 4) -> list[list[int]]:
    """For each latent frame, the inclusive [first, last] pixel frame it covers."""
    spans = []
    for f in range(num_latent_frames):
        if f == 0:
            spans.append([0, 0])
        else:
            spans.append([temporal_factor * f - temporal_factor + 1, temporal_factor * f])
    return spans

