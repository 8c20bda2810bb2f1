"""The numbers of the report, computed step by step from one read of each step.

:class:`Accumulator` takes each step's layer-mean attention A (queries x tokens) once,
keeps per-step vectors (tokens long) and a few fixed-size maps, and never holds more
than one step's A besides the previous one (for the change between steps).

Definitions (the report quotes them):
- token mass m_t = mean over queries q of A[q, t]; token share = m_t / sum_t' m_t'.
- text entropy of a query: H_q = -sum_t p_qt ln p_qt with p_qt = A[q, t] / sum_t' A[q, t'].
- spatial entropy of a token: S_t = -sum_q r_qt ln r_qt with r_qt = A[q, t] / sum_q' A[q', t].
- change from the previous step: D_s = sum_{q,t} |A_s - A_{s-1}| / sum_{q,t} A_{s-1}.
- winner of a location: argmax_t A[q, t]; winner of a step: argmax_t m_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.arrays import column_sums
from analyzer.reader import StepData

_TINY = np.float32(1e-30)


def entropy_from_sums(total: np.ndarray, weighted_log: np.ndarray) -> np.ndarray:
    """Entropy (nats) of distributions given unnormalised: H = ln S - (sum a ln a) / S, with S = sum a.

    Zero-mass distributions get 0. One a ln a pass serves both the per-query and the
    per-token entropies, instead of two normalise-and-log passes.
    """
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, np.log(safe) - weighted_log / safe, 0.0)


def row_blocks(num_rows: int, max_rows: int) -> np.ndarray:
    """Start indices of ``min(num_rows, max_rows)`` near-equal consecutive row blocks."""
    count = min(num_rows, max_rows)
    return np.linspace(0, num_rows, count + 1).astype(np.int64)[:-1]


def downsample_rows(a: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Average consecutive rows of ``a`` over the blocks that begin at ``starts``."""
    sums = np.add.reduceat(a, starts, axis=0)
    sizes = np.diff(np.append(starts, a.shape[0]))
    return sums / sizes[:, None]


@dataclass(frozen=True)
class StepSummary:
    """The per-step row of the report."""

    position: int
    index: int
    timestep: float
    sigma: float
    expert: int
    token_mass: np.ndarray  # (T,)
    text_entropy: float  # mean over queries of H_q
    spatial_entropy: np.ndarray  # (T,)
    padding: float  # mean padding mass
    change: float | None  # D_s, None at the first analysed step
    win_share: np.ndarray  # (T,) fraction of locations each token wins

    @property
    def top_token(self) -> int:
        return int(np.argmax(self.token_mass))

    @property
    def top_share(self) -> float:
        return float(self.token_mass[self.top_token] / max(self.token_mass.sum(), 1e-30))


class Accumulator:
    """Collects every summary of the analysis from a stream of :class:`StepData`."""

    def __init__(self, num_queries: int, num_tokens: int, units: list[tuple[int, ...]], heatmap_rows: int,
                 step_normalised: bool = False):
        """step_normalised: also keep the per-word maps of steps each scaled to its own maximum (``per-step``)."""
        self.num_queries = num_queries
        self.num_tokens = num_tokens
        # membership of tokens in the per-word units: the word maps and the layer profile
        self.units = units
        self.membership = np.zeros((num_tokens, len(units)), dtype=np.float32)
        for u, tokens in enumerate(units):
            self.membership[list(tokens), u] = 1.0
        self.row_starts = row_blocks(num_queries, heatmap_rows)
        self.steps: list[StepSummary] = []
        self.layer_token_mass_sum: np.ndarray | None = None  # (L, T), summed over steps
        self.layer_padding: list[np.ndarray] = []  # per step, (L,): small, drawn per step
        self.unit_sum = np.zeros((len(units), num_queries), dtype=np.float64)
        self.unit_step_normalised_sum = (np.zeros((len(units), num_queries), dtype=np.float64)
                                         if step_normalised else None)
        self.wins = np.zeros((num_queries, num_tokens), dtype=np.int32)
        self.head_sums: dict[str, np.ndarray] = {}  # per-head summaries summed over the steps that have them
        self.head_count = 0
        self._previous: np.ndarray | None = None

    def add(self, data: StepData) -> tuple[StepSummary, np.ndarray]:
        """Take one step; return its summary and its heatmap (rows, T), which is not kept."""
        a = data.attention  # (Q, T) float32
        a_log_a = a * np.log(np.maximum(a, _TINY))
        query_total = data.query_total if data.query_total is not None else a.sum(axis=1, dtype=np.float64)
        token_total = column_sums(a)
        token_mass = token_total / a.shape[0]
        text_entropy = float(entropy_from_sums(query_total, a_log_a.sum(axis=1, dtype=np.float64)).mean())
        spatial_entropy = entropy_from_sums(token_total, column_sums(a_log_a))
        del a_log_a
        winners = np.argmax(a, axis=1)
        self.wins[np.arange(a.shape[0]), winners] += 1  # one winner per query: no repeated index
        win_share = np.bincount(winners, minlength=self.num_tokens) / a.shape[0]
        change = None
        if self._previous is not None:
            change = float(np.abs(a - self._previous).sum(dtype=np.float64)
                           / max(self._previous.sum(dtype=np.float64), 1e-30))
        self._previous = a

        units = (a @ self.membership).T  # (U, Q): each word's map is the sum of its tokens' maps
        self.unit_sum += units
        if self.unit_step_normalised_sum is not None:
            step_max = float(units.max()) if units.size else 0.0
            if step_max > 0:
                self.unit_step_normalised_sum += units / step_max
        heatmap = downsample_rows(a, self.row_starts).astype(np.float32)
        if self.layer_token_mass_sum is None:
            self.layer_token_mass_sum = np.zeros_like(data.layer_token_mass, dtype=np.float64)
        self.layer_token_mass_sum += data.layer_token_mass
        self.layer_padding.append(data.layer_padding)
        if data.heads is not None:
            for name, values in data.heads.items():
                self.head_sums[name] = self.head_sums.get(name, 0.0) + values
            self.head_count += 1

        step = data.step
        summary = StepSummary(step.position, step.index, step.timestep, step.sigma, step.expert, token_mass,
                              text_entropy, spatial_entropy, float(data.padding.mean(dtype=np.float64)), change,
                              win_share)
        self.steps.append(summary)
        return summary, heatmap

    # --- results over all analysed steps ------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.steps)

    def token_mass(self) -> np.ndarray:
        """(T,) mean over steps of m_t."""
        return np.mean([s.token_mass for s in self.steps], axis=0)

    def spatial_entropy(self) -> np.ndarray:
        """(T,) mean over steps of S_t."""
        return np.mean([s.spatial_entropy for s in self.steps], axis=0)

    def steps_won(self) -> np.ndarray:
        """(T,) how many steps each token won."""
        return np.bincount([s.top_token for s in self.steps], minlength=self.num_tokens)

    def location_win_share(self) -> np.ndarray:
        """(T,) fraction of (step, location) pairs each token wins."""
        return self.wins.sum(axis=0) / max(self.wins.sum(), 1)

    def modal_winner(self) -> np.ndarray:
        """(Q,) the token that wins each location most often over the steps."""
        return np.argmax(self.wins, axis=1)

    def winner_stability(self) -> float:
        """Mean over locations of the fraction of steps in which the location's modal winner wins."""
        return float(self.wins.max(axis=1).mean() / max(self.count, 1))

    def unit_maps(self, normalisation: str) -> np.ndarray:
        """(U, Q) per-word maps over the analysed steps, before any per-frame scaling."""
        if normalisation == "per-step":
            if self.unit_step_normalised_sum is None:
                raise ValueError("per-step maps were not kept: build the Accumulator with step_normalised=True")
            return self.unit_step_normalised_sum / max(self.count, 1)
        return self.unit_sum / max(self.count, 1)

    def layer_profile(self) -> np.ndarray:
        """(L, T) mean over steps of each layer's token mass."""
        return self.layer_token_mass_sum / max(self.count, 1)

    def head_means(self) -> dict[str, np.ndarray]:
        """Per-head summaries averaged over the analysed steps: "entropy", "padding" (L, H), "token_mass" (L, H, T)."""
        return {name: total / max(self.head_count, 1) for name, total in self.head_sums.items()}

    def padding_by_step_layer(self) -> np.ndarray:
        """(S, L) mean padding mass of each step and layer."""
        return np.asarray(self.layer_padding)
