"""Round float16 values to fewer mantissa bits, in numpy (no torch): the lossy storage option.

The same rounding as the recorder's :func:`recorder.precision.round_mantissa` (nearest, ties
up, on the bit pattern), bit for bit, for code that has no torch: ``wan-analyze subset
--mantissa-bits`` re-rounds a stored float16 map to fewer bits.
"""

from __future__ import annotations

import numpy as np

from shared.schema import FLOAT16_MANTISSA_BITS


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """Round non-negative float16 ``values`` to ``bits`` mantissa bits (nearest, ties up); a new array.

    Probabilities are >= 0, so the sign bit is clear and the int16 view is the magnitude:
    adding half a unit of the last kept bit and masking rounds to nearest; a carry into
    the exponent is the correct rounding up to the next power of two. (Like the torch
    version, a value with its sign bit set is not rounded as a magnitude: the result for
    it is the bit arithmetic's, wrapped to 16 bits.)
    """
    values = np.asarray(values)
    if values.dtype != np.float16:
        raise TypeError(f"round_mantissa needs float16, got {values.dtype}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 0 <= bits <= FLOAT16_MANTISSA_BITS:
        raise ValueError(f"mantissa bits must be 0..{FLOAT16_MANTISSA_BITS}, got {bits!r}")
    if bits == FLOAT16_MANTISSA_BITS:
        return values.copy()
    drop = FLOAT16_MANTISSA_BITS - int(bits)
    raw = values.view(np.int16).astype(np.int32)
    raw = (raw + (1 << (drop - 1))) & ~((1 << drop) - 1)
    return raw.astype(np.int16).view(np.float16)
