"""Optional lossy storage: round float16 probabilities to fewer mantissa bits.

float16 probabilities barely compress (about 1.2x), because their low mantissa bits are
noise to a compressor. Zeroing them (rounding to nearest) lets bit-shuffle + LZ4 find
long runs: keeping 3 of 10 bits makes the maps about 2.3x smaller, at a relative error of
at most 2**-4 for normal float16 values (README "Lossy option"). Done on the device,
before the copy to the host.
"""

from __future__ import annotations

import torch

from shared.schema import FLOAT16_MANTISSA_BITS


def round_mantissa(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Round non-negative float16 ``values`` to ``bits`` mantissa bits (nearest, ties up)."""
    if values.dtype != torch.float16:
        raise TypeError(f"round_mantissa needs float16, got {values.dtype}")
    if not 0 <= bits <= FLOAT16_MANTISSA_BITS:
        raise ValueError(f"mantissa bits must be 0..{FLOAT16_MANTISSA_BITS}, got {bits}")
    if bits == FLOAT16_MANTISSA_BITS:
        return values
    drop = FLOAT16_MANTISSA_BITS - bits
    # Probabilities are >= 0, so the sign bit is clear and the int16 view is the magnitude:
    # adding half a unit of the last kept bit and masking rounds to nearest; a carry into
    # the exponent is the correct rounding up to the next power of two.
    raw = values.view(torch.int16).to(torch.int32)
    raw = (raw + (1 << (drop - 1))) & ~((1 << drop) - 1)
    return raw.to(torch.int16).view(torch.float16)
