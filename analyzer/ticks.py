"""Round tick values for a colour bar or an axis, chosen as matplotlib chooses them, without importing matplotlib.

The step pictures, the montage and the head ranking label their colour scales with
:func:`round_ticks`. It gives what ``MaxNLocator(nbins, steps=[1, 2, 2.5, 5, 10])`` gives
(``tests/test_step_picture.py`` checks it to the bit against matplotlib), so PIL pictures and
matplotlib figures agree, while the analyzer's main process never imports matplotlib.
"""

from __future__ import annotations

import math

import numpy as np


def round_ticks(top: float, count: int = 5, bottom: float = 0.0) -> list[tuple[float, str]]:
    """Round values from ``bottom`` to ``top`` (at most ``count`` + 1 of them) and their labels, as matplotlib
    picks them; the labels have as many decimals as the step between them needs."""
    return labelled_ticks(_nice_ticks(bottom, top, count), top, bottom)


def labelled_ticks(candidates, top: float, bottom: float = 0.0) -> list[tuple[float, str]]:
    """The ``candidates`` from ``bottom`` to ``top`` and their labels, with as many decimals as the step between
    them needs."""
    values = [v for v in candidates if bottom - 1e-12 - abs(bottom) * 1e-9 <= v <= top + 1e-12 + abs(top) * 1e-9]
    step = values[1] - values[0] if len(values) > 1 else abs(top - bottom) or abs(top)
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step > 0 and round(step, digits) != round(step, digits + 1):
        digits += 1
    return [(v, f"{v:.{digits}f}") for v in values]


# the steps between ticks, times a power of ten: matplotlib's staircase for steps [1, 2, 2.5, 5, 10], its
# entries computed as it computes them (0.1 * 2.5 and not 0.25) so that the ticks are the same to the bit
_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
_STAIRCASE = tuple(0.1 * s for s in _STEPS[:-1]) + _STEPS + (10 * _STEPS[1],)


def _nice_ticks(vmin: float, vmax: float, bins: int) -> list[float]:
    """``MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(vmin, vmax)`` of matplotlib 3.x (its
    ``axes.autolimit_mode`` "data"), without importing matplotlib: the smallest round step that spans the range
    in at most ``bins`` steps, and the multiples of it from at or below ``vmin`` to at or above ``vmax``."""
    vmin, vmax = _nonsingular(vmin, vmax)
    span, middle = abs(vmax - vmin), (vmax + vmin) / 2
    # far from zero, the ticks are found for the range less a round offset, which keeps their precision
    offset = 0.0 if abs(middle) / span < 100 else math.copysign(10 ** (math.log10(abs(middle)) // 1), middle)
    scale = 10 ** (math.log10(span / bins) // 1)
    low, high = vmin - offset, vmax - offset
    steps = [s * scale for s in _STAIRCASE]
    raw_step = (high - low) / bins
    first = next((i for i, s in enumerate(steps) if s >= raw_step), len(steps) - 1)
    for step in reversed(steps[:first + 1]):  # a smaller step when the first leaves fewer than two ticks inside
        base = (low // step) * step
        lowest, highest = _multiples_at_or_beyond(low - base, high - base, step, offset)
        ticks = [n * step + base for n in range(lowest, highest + 1)]
        if sum(low <= t <= high for t in ticks) >= 2:
            break
    return [t + offset for t in ticks]


def _nonsingular(vmin: float, vmax: float, expander: float = 1e-13, tiny: float = 1e-14) -> tuple[float, float]:
    """matplotlib's ``transforms._nonsingular`` as ``MaxNLocator.tick_values`` calls it: an empty or minute
    range widened a little, a non-finite one replaced, the ends in order."""
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        return -expander, expander
    vmin, vmax = sorted((float(vmin), float(vmax)))
    largest = max(abs(vmin), abs(vmax))
    if largest < (1e6 / tiny) * np.finfo(float).tiny:
        return -expander, expander
    if vmax - vmin <= largest * tiny:
        if vmax == 0 and vmin == 0:
            return -expander, expander
        return vmin - expander * abs(vmin), vmax + expander * abs(vmax)
    return vmin, vmax


def _multiples_at_or_beyond(low: float, high: float, step: float, offset: float) -> tuple[int, int]:
    """The largest n with n * step <= ``low`` and the smallest with n * step >= ``high``, a remainder within
    rounding error of a whole step counted as one (matplotlib's ``_Edge_integer``: more slop with a large offset)."""
    tolerance = min(0.4999, max(1e-10, 10 ** (math.log10(abs(offset) / step) - 12))) if offset else 1e-10
    below, rest = divmod(low, step)
    if abs(rest / step - 1) < tolerance:
        below += 1
    above, rest = divmod(high, step)
    if not abs(rest / step) < tolerance:
        above += 1
    return int(below), int(above)
