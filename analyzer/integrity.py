"""Checks of what a store holds, as it streams: nothing is drawn from values that cannot be probabilities.

:func:`analyzer.statistics.reduce_step` checks each step on its layer mean (a few cheap passes
over one (queries, tokens) array, no extra pass per layer); only when a check fails does
:func:`diagnose` go back over the layers to say where the bad value is. What the
mean-level checks cannot see: one value off by less than ``layers x tolerance`` in a
single layer (a row of the mean moves by the error divided by the number of layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analyzer.arrays import HALF_INVALID
from analyzer.text import block_label
from shared import schema
from shared.schema import FLOAT16_MANTISSA_BITS

if TYPE_CHECKING:
    from analyzer.reader import RawStep, StoreView

# FLOAT16_MANTISSA_BITS (the lossless precision) is shared.schema's, named here too for the mantissa checks' users
__all__ = ["FLOAT16_MANTISSA_BITS", "Problem", "Where", "diagnose", "has_negative_zero", "head_problem",
           "mean_problem", "row_sum_tolerance"]

# A float16 at or above this bit pattern has its sign bit set (and is not +/-0): a negative value or a -NaN.
_HALF_NEGATIVE = np.uint16(0x8000)


def row_sum_tolerance(mantissa_bits: int, num_tokens: int) -> float:
    """How far a stored row (its tokens plus its padding mass) may sum from 1.

    Rounding to m mantissa bits moves a normal float16 by at most 2**-(m+1) of itself, and a
    subnormal one (below 2**-14) by at most 2**-(m+15); the true values of a row sum to 1, so
    the stored row sums to 1 within 2**-(m+1) + (T+1) * 2**-(m+15). Factor 2: with fewer than
    10 bits the recorder rounds twice (float32 -> float16 -> m bits), and the float32 sums of
    the recorder's softmax and of this check add a few 2**-24 more.
    """
    m = int(mantissa_bits)
    return 2.0 * (2.0 ** -(m + 1) + (num_tokens + 1) * 2.0 ** -(m + 15))


@dataclass(frozen=True)
class Where:
    """What the messages need to name a place of one step: arrays, layers, grid, chunking."""

    attention: str  # e.g. "cond/attention"
    padding: str  # e.g. "cond/padding_mass"
    step_index: int
    layer_blocks: list[int]  # block of each layer entry read, in order
    grid: tuple[int, int, int]
    tolerance: float
    mantissa_bits: int

    @classmethod
    def of(cls, view: StoreView, raw: RawStep) -> Where:
        """The places of one step as read, and the tolerance of its store's precision."""
        return cls(schema.attention(view.branch).path, schema.padding_mass(view.branch).path, raw.step.index,
                   [view.layer_blocks[i] for i in raw.layers], view.grid,
                   row_sum_tolerance(view.mantissa_bits, len(view.tokens)), view.mantissa_bits)

    def step(self) -> str:
        return f"at step {self.step_index}"

    def query(self, layer: int, query: int) -> str:
        f, y, x = np.unravel_index(query, self.grid)
        return f"{_layer(self.layer_blocks[layer])}, frame {f}, y {y}, x {x}"


def _layer(block: int) -> str:
    return block_label(block, "layer block ")


def _number(value: float) -> str:
    return "NaN" if np.isnan(value) else f"{value:.6g}"


@dataclass(frozen=True)
class Problem:
    """What is wrong with one step, and where: the array ("attention" or "padding"), layer entry and query."""

    message: str
    array: str | None = None
    layer: int | None = None
    query: int | None = None
    not_a_number: bool = False  # NaN: a chunk never written (or deleted) reads back as its NaN fill


def mean_problem(total: np.ndarray, query_total: np.ndarray, padding: np.ndarray, layer_padding: np.ndarray,
                 pad: np.ndarray, n_layers: int, tolerance: float) -> bool:
    """Whether one step fails a check, judged on its layer mean (cheap); see :func:`diagnose` for where.

    total: (Q, T) float32 mean attention; query_total: (Q,) its row sums; padding: (Q,) mean
    padding; layer_padding: (L,) mean padding of each layer; pad: (L, Q) padding as stored.
    """
    # decoded NaN, inf and negative values land at or above HALF_INVALID, and stay there in the mean
    peak = total.max(initial=0.0)
    if not peak < HALF_INVALID / n_layers or not np.isfinite(total).all() or peak > 1.0 + tolerance:
        return True
    # NaN (a padding chunk never written) and inf survive the sums over queries
    if not np.isfinite(layer_padding).all():
        return True
    if pad.dtype == np.float16 and pad.size and pad.view(np.uint16).max() > _HALF_NEGATIVE:
        return True
    if pad.dtype != np.float16 and pad.size and pad.min() < 0:
        return True
    return bool(np.abs(query_total + padding - 1.0).max(initial=0.0) > tolerance)


def has_negative_zero(att: np.ndarray) -> bool:
    """Whether float16 ``att`` holds -0.0: a valid zero probability that the fast decoding marks invalid."""
    return att.dtype == np.float16 and bool((att.view(np.uint16) == _HALF_NEGATIVE).any())


def diagnose(att: np.ndarray, pad: np.ndarray, where: Where) -> Problem:
    """The first bad value of a step that failed :func:`mean_problem`.

    att: (L, Q, T) and pad: (L, Q) as stored. Goes over the layers one at a time (the
    failure path only); within a layer NaN is named first, then values outside [0, 1],
    then rows that do not sum to 1, so the message names the cause rather than its echo.
    """
    for layer in range(att.shape[0]):
        a = np.asarray(att[layer], dtype=np.float32)
        p = np.asarray(pad[layer], dtype=np.float32)
        found = _layer_problem(a, p, layer, where)
        if found is not None:
            return found
    return Problem(f"{where.attention} {where.step()}: its layer mean fails the value checks, though no single "
                   f"layer does (tolerance {_number(where.tolerance)})")


def _layer_problem(a: np.ndarray, p: np.ndarray, layer: int, where: Where) -> Problem | None:
    nan = np.isnan(a)
    if nan.any():
        q, t = np.unravel_index(int(np.argmax(nan)), a.shape)
        return Problem(f"{where.attention} {where.step()}: NaN at {where.query(layer, q)}, token {t} although the "
                       f"step is marked complete", "attention", layer, int(q), True)
    nan = np.isnan(p)
    if nan.any():
        q = int(np.argmax(nan))
        return Problem(f"{where.padding} {where.step()}: NaN at {where.query(layer, q)} although the step is marked "
                       f"complete", "padding", layer, q, True)
    outside = np.maximum(-a, a - 1.0)  # > 0 exactly where a value is outside [0, 1] (inf included)
    q, t = np.unravel_index(int(np.argmax(outside)), a.shape)
    if a[q, t] < 0 or a[q, t] > 1.0 + where.tolerance:
        return Problem(f"{where.attention} {where.step()}: probability {_number(a[q, t])} at "
                       f"{where.query(layer, q)}, token {t} is outside [0, 1]", "attention", layer, int(q))
    q = int(np.argmin(p))
    if p[q] < 0:
        return Problem(f"{where.padding} {where.step()}: padding mass {_number(p[q])} at {where.query(layer, q)} "
                       f"is negative", "padding", layer, q)
    rows = a.sum(axis=1, dtype=np.float64) + p
    q = int(np.argmax(np.abs(rows - 1.0)))
    if abs(rows[q] - 1.0) > where.tolerance:
        return Problem(f"{where.attention} + {where.padding} {where.step()}: the tokens and padding of "
                       f"{where.query(layer, q)} sum to {_number(rows[q])}, not 1 (tolerance "
                       f"{_number(where.tolerance)} for {where.mantissa_bits} mantissa bits)", "attention", layer, q)
    return None


def head_problem(heads: dict[str, np.ndarray], paths: dict[str, str], where: Where) -> str | None:
    """A per-head summary of a complete step that holds NaN or inf (its chunk never written, or deleted)."""
    for name, values in heads.items():
        finite = np.isfinite(values)
        if finite.all():
            continue
        position = np.unravel_index(int(np.argmin(finite)), values.shape)
        layer, head = int(position[0]), int(position[1])
        token = f", token {int(position[2])}" if len(position) > 2 else ""
        return (f"{paths[name]} {where.step()}: {_number(values[position])} at {_layer(where.layer_blocks[layer])}, "
                f"head {head}{token} although the step is marked complete")
    return None
