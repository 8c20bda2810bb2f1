"""Store sizes computed from the schema (not measured): uncompressed bytes per recording.

    python -m benchmarks.store_sizes

For each resolution and option, the cond attention + padding arrays (float16) and the
video (uint8). Compression shrinks attention only ~1.2x (README "Compression").
"""

from __future__ import annotations

import numpy as np

from shared import grid, schema

CASES = [
    # label, height, width, frames, steps, layers, tokens, spatial factor (VAE x patch)
    ("Wan2.1 1.3B, 480x832, 81 frames", 480, 832, 81, 50, 30, 30, 16),
    ("Wan2.1 14B, 720x1280, 81 frames", 720, 1280, 81, 50, 40, 30, 16),
    ("Wan2.2 A14B, 720x1280, 81 frames", 720, 1280, 81, 40, 40, 30, 16),
    ("Wan2.2 TI2V-5B, 704x1280, 121 frames", 704, 1280, 121, 50, 30, 30, 32),
]


def attention_bytes(height, width, frames, steps, layers, tokens, factor) -> int:
    queries = grid.latent_frames(frames) * (height // factor) * (width // factor)
    itemsize = np.dtype(schema.attention("cond").dtype).itemsize
    return steps * layers * queries * (tokens + 1) * itemsize  # +1: the padding mass


def main() -> None:
    print("| recording (prompt of 30 tokens) | all layers | layer mean | every 5th step | video |")
    print("| --- | --- | --- | --- | --- |")
    for label, h, w, f, steps, layers, tokens, factor in CASES:
        full = attention_bytes(h, w, f, steps, layers, tokens, factor)
        mean = attention_bytes(h, w, f, steps, 1, tokens, factor)
        strided = attention_bytes(h, w, f, -(-steps // 5), layers, tokens, factor)
        video = f * h * w * 3
        print(f"| {label}, {steps} steps, {layers} layers | {full / 2**30:.2f} GiB | {mean / 2**20:.0f} MiB | "
              f"{strided / 2**30:.2f} GiB | {video / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
