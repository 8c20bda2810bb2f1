"""Array kernels of the streaming pass: half-float decoding and column sums, both memory-bound.

numpy's float16 -> float32 cast and its reductions along the first axis of a
(queries, tokens) array are several times slower than the memory they touch; these
do the same work in a few vectorised passes.
"""

from __future__ import annotations

import numpy as np

# float16 bits shifted into a float32's place scale the value by 2**-112 (exponent bias 15 vs 127)
_HALF_TO_SINGLE = np.float32(2.0 ** 112)
# A value at or above this came from a float16 that is inf, NaN or has its sign bit set
# (the sign lands in the float32 exponent): never a finite non-negative attention weight.
HALF_INVALID = np.float32(65536.0)
_COLUMN_BLOCKS = 64


def half_to_single(half: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Decode non-negative float16 ``half`` into float32 ``out`` exactly (subnormals included).

    Inf, NaN and negative inputs come out as values >= :data:`HALF_INVALID`, so one
    comparison on a result (or on a sum of results) finds them.
    """
    bits = out.view(np.uint32)
    np.left_shift(half.view(np.uint16), 13, out=bits, dtype=np.uint32)
    np.multiply(out, _HALF_TO_SINGLE, out=out)
    return out


def column_sums(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=0)`` of a C-contiguous 2-D float32 array, as float64.

    The rows are folded into :data:`_COLUMN_BLOCKS` long rows and summed in float32, so
    the inner loop runs over whole cache lines instead of over the short token axis;
    each partial sum covers 1/64 of the rows (about 1e-7 relative error against a
    float64 sum at 33k rows), and the partials are added in float64.
    """
    rows, columns = a.shape
    whole = rows - rows % _COLUMN_BLOCKS
    folded = np.add.reduce(a[:whole].reshape(-1, _COLUMN_BLOCKS * columns), axis=0)
    sums = folded.reshape(_COLUMN_BLOCKS, columns).sum(axis=0, dtype=np.float64)
    if whole < rows:
        sums += a[whole:].sum(axis=0, dtype=np.float64)
    return sums
