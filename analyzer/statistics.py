"""Every number of an analysis, from one read of each step: the one home of the statistics.

:func:`reduce_step` turns a step as stored into its layer mean (checked by
:mod:`analyzer.integrity` on the way); :class:`Accumulator` takes each step's layer-mean
attention A (queries x tokens) once, keeps per-step vectors (tokens long) and a few
fixed-size maps, and never holds more than one step's A besides the previous one (for the
change between steps). After the pass, :func:`conclude` derives the rest (head ranking,
layer profile, segmentation) into the :class:`analyzer.options.Analysis`, and
:func:`word_maps` applies ``--normalize`` to the per-word maps.

Definitions (the report quotes them):
- token mass m_t = mean over queries q of A[q, t]; token share = m_t / sum_t' m_t'.
- text entropy of a query: H_q = -sum_t p_qt ln p_qt with p_qt = A[q, t] / sum_t' A[q, t'].
- spatial entropy of a token: S_t = -sum_q r_qt ln r_qt with r_qt = A[q, t] / sum_q' A[q', t].
- change from the previous step: D_s = sum_{q,t} |A_s - A_{s-1}| / sum_{q,t} A_{s-1}.
- winner of a location: argmax_t A[q, t]; winner of a step: argmax_t m_t.
- word map: M_w[q] = R_{t in w} (1/N) sum_s A_s[q, t], R the ``--word-reduction`` over the word's
  sub-tokens (sum, mean or max; default max); the segmentation's winner of a location is
  argmax_w max_{t in w} (1/N) sum_s A_s[q, t], whatever ``--normalize`` (which only scales the
  overlays' colours) and ``--word-reduction`` (a word must not win for being split into more tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analyzer import integrity
from analyzer.arrays import column_sums, half_to_single
from analyzer.errors import StepError
from analyzer.options import WORD_REDUCTIONS, Analysis, Selection
from analyzer.reader import RawStep, Step, StoreView

_TINY = np.float32(1e-30)
# The segmentation's reduction over a word's sub-tokens, whatever --word-reduction (see segment_winners).
SEGMENTATION_REDUCTION = "max"


@dataclass(frozen=True)
class StepData:
    """What the analysis needs from one step, reduced over the selected layers (in the streaming pass's second thread).

    attention: (queries, tokens) float32, mean over the selected layers.
    padding: (queries,) float32, mean padding mass over the selected layers.
    layer_token_mass: (layers, tokens) float64, mean over queries of each layer's attention.
    layer_padding: (layers,) float64, mean padding mass of each layer.
    query_total: (queries,) float64, each query's attention summed over the tokens (None: not computed).
    heads: the step's per-head summaries of the selected layers, float64 by name: "entropy" and
        "padding" (layers, heads), "token_mass" (layers, heads, tokens); None when not read.
    single_layers: (queries, tokens) float32 of the layer entries asked for by position among those read
        (``keep_layers`` of :func:`reduce_step`: the viewer's single layers), decoded once with the mean.
    """

    step: Step
    attention: np.ndarray
    padding: np.ndarray
    layer_token_mass: np.ndarray
    layer_padding: np.ndarray
    query_total: np.ndarray | None = None
    heads: dict[str, np.ndarray] | None = None
    single_layers: dict[int, np.ndarray] = field(default_factory=dict)


# The layer mean goes through a step's rows a block of about this many bytes (float32) at a time: every
# layer's block is decoded and added while the block's sum is still in cache. A layer at a time through the
# whole step moved each 4 MB sum through memory once per layer: about a quarter slower on the benchmark store, more
# when another core reads at the same time.
LAYER_MEAN_BLOCK_BYTES = 1 << 20


def layer_mean(att: np.ndarray, exact: bool = False,
               keep: tuple[int, ...] | list[int] = ()) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """The mean over layers of (L, Q, T) attention, float32 (Q, T), and each layer's token mass, (L, T) float64.

    float16 values are decoded by :func:`analyzer.arrays.half_to_single` (numpy's own cast is
    the slowest step of the pass), a block of rows at a time into one small reused buffer
    (:data:`LAYER_MEAN_BLOCK_BYTES`); it turns every value with its sign bit set into an
    "invalid" marker. ``exact`` decodes with numpy instead (slower), for the rare step that
    holds -0.0. The layers are added in order, so the mean is the same to the bit as adding
    whole layers. ``keep``: layers (by position) whose float32 values are returned too, by
    position, copied as they are decoded.
    """
    n_layers, n_queries, n_tokens = att.shape
    kept = {layer: np.empty((n_queries, n_tokens), dtype=np.float32) for layer in keep if 0 <= layer < n_layers}
    total = np.zeros((n_queries, n_tokens), dtype=np.float32)
    column_totals = np.zeros((n_layers, n_tokens), dtype=np.float64)
    rows = max(1, LAYER_MEAN_BLOCK_BYTES // (4 * max(1, n_tokens)))
    buffer = np.empty((min(rows, n_queries), n_tokens), dtype=np.float32)
    fast = att.dtype == np.float16 and not exact
    for start in range(0, n_queries, rows):
        stop = min(n_queries, start + rows)
        block_total = total[start:stop]
        for layer in range(n_layers):
            decoded = block_total if layer == 0 else buffer[:stop - start]  # the first layer is the sum so far
            if fast:
                half_to_single(att[layer, start:stop], decoded)
            else:
                np.copyto(decoded, att[layer, start:stop])
            column_totals[layer] += column_sums(decoded)
            if layer in kept:
                kept[layer][start:stop] = decoded
            if layer:
                block_total += decoded
    total /= np.float32(n_layers)
    return total, column_totals / n_queries, kept


def reduce_step(view: StoreView, raw: RawStep, keep_layers: tuple[int, ...] | list[int] = ()) -> StepData:
    """Average a step over its layers, keeping each layer's token mass; a StepError if a value is wrong.

    ``keep_layers``: layers (by position among those read) whose maps the step's data carries too.

    The checks (:mod:`analyzer.integrity`) run on the layer mean, not on every layer; only a
    step that fails them is gone over again, layer by layer, to name the bad value.
    """
    step, att, pad = raw.step, raw.attention, raw.padding
    n_layers, n_queries, _ = att.shape
    total, layer_token_mass, single_layers = layer_mean(att, keep=keep_layers)
    layer_padding = pad.sum(axis=1, dtype=np.float64) / n_queries
    padding = np.add.reduce(pad, axis=0, dtype=np.float32) / np.float32(n_layers)
    query_total = total.sum(axis=1, dtype=np.float64)  # the text entropy needs it too
    where = integrity.Where.of(view, raw)
    if integrity.mean_problem(total, query_total, padding, layer_padding, pad, n_layers, where.tolerance):
        problem = integrity.diagnose(att, pad, where)
        if problem.layer is not None or not integrity.has_negative_zero(att):
            raise StepError(view.location, step, view.with_chunk(problem, raw))
        # -0.0 is a zero probability, but the fast decoding takes its sign bit for "invalid": decode exactly
        total, layer_token_mass, single_layers = layer_mean(att, exact=True, keep=keep_layers)
        query_total = total.sum(axis=1, dtype=np.float64)
        if integrity.mean_problem(total, query_total, padding, layer_padding, pad, n_layers, where.tolerance):
            raise StepError(view.location, step, problem.message)
    problem = integrity.head_problem(raw.heads, view.head_paths, where)
    if problem is not None:
        raise StepError(view.location, step, problem)
    return StepData(step, total, padding, layer_token_mass, layer_padding, query_total, raw.heads, single_layers)


def entropy_from_sums(total: np.ndarray, weighted_log: np.ndarray) -> np.ndarray:
    """Entropy (nats) of distributions given as unscaled weights a: H = ln S - (sum a ln a) / S, with S = sum a.

    Zero-mass distributions get 0. One a ln a pass serves both the per-query and the
    per-token entropies, instead of two divide-and-log passes.
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


def membership(num_tokens: int, groups: list[tuple[int, ...]]) -> np.ndarray:
    """(T, G) float32: 1 where token t belongs to group g (a word, or a per-word view's unit), else 0.

    ``values @ membership`` sums each group's tokens: word maps, word masses, the layer profile.
    """
    matrix = np.zeros((num_tokens, len(groups)), dtype=np.float32)
    for g, tokens in enumerate(groups):
        matrix[list(tokens), g] = 1.0
    return matrix


class Accumulator:
    """Collects every summary of the analysis from a stream of :class:`StepData`."""

    def __init__(self, num_queries: int, num_tokens: int, units: list[tuple[int, ...]], heatmap_rows: int,
                 normalize: str = "global"):
        """normalize: the ``--normalize`` mode of the per-word maps; "per-step" also keeps the per-word maps
        of steps each scaled to its own maximum (see :func:`word_maps`)."""
        self.num_queries = num_queries
        self.num_tokens = num_tokens
        self.normalize = normalize
        # membership of tokens in the per-word units: the word maps and the layer profile
        self.membership = membership(num_tokens, units)
        self.units = [tuple(u) for u in units]
        self.row_starts = row_blocks(num_queries, heatmap_rows)
        self.steps: list[StepSummary] = []
        self.layer_token_mass_sum: np.ndarray | None = None  # (L, T), summed over steps
        self.layer_padding: list[np.ndarray] = []  # per step, (L,): small, drawn per step
        # the maps of the tokens that belong to a unit, summed over the steps: every word reduction
        # (sum, mean, max over a word's sub-tokens) is taken from them after the pass
        self.unit_tokens = np.asarray(sorted({t for u in self.units for t in u}), dtype=np.int64)
        self._token_sum = np.zeros((num_queries, num_tokens), dtype=np.float64)  # every token: no gather per step
        self._unit_columns = [np.searchsorted(self.unit_tokens, np.asarray(u, dtype=np.int64)) for u in self.units]
        # per reduction, the word maps of steps each scaled to its step's maximum ("per-step" only)
        self.unit_step_scaled_sum = ({r: np.zeros((len(units), num_queries), dtype=np.float64)
                                      for r in WORD_REDUCTIONS} if normalize == "per-step" else None)
        self.wins = np.zeros((num_queries, num_tokens), dtype=np.int32)
        self.head_sums: dict[str, np.ndarray] = {}  # per-head summaries summed over the steps that have them
        self.head_count = 0
        self._previous: np.ndarray | None = None
        self._scratch = np.empty((num_queries, num_tokens), dtype=np.float32)  # a ln a, then |a - previous|

    def add(self, data: StepData) -> tuple[StepSummary, np.ndarray]:
        """Take one step; return its summary and its heatmap (rows, T), which is not kept."""
        a = data.attention  # (Q, T) float32
        # the temporaries go to one scratch array: a fresh 4 MB array per operation costs more in page faults
        a_log_a = self._scratch
        np.maximum(a, _TINY, out=a_log_a)
        np.log(a_log_a, out=a_log_a)
        np.multiply(a_log_a, a, out=a_log_a)
        query_total = data.query_total if data.query_total is not None else a.sum(axis=1, dtype=np.float64)
        token_total = column_sums(a)
        token_mass = token_total / a.shape[0]
        text_entropy = float(entropy_from_sums(query_total, a_log_a.sum(axis=1, dtype=np.float64)).mean())
        spatial_entropy = entropy_from_sums(token_total, column_sums(a_log_a))
        winners = np.argmax(a, axis=1)
        self.wins[np.arange(a.shape[0]), winners] += 1  # one winner per query: no repeated index
        win_share = np.bincount(winners, minlength=self.num_tokens) / a.shape[0]
        change = None
        if self._previous is not None:
            difference = np.abs(np.subtract(a, self._previous, out=self._scratch), out=self._scratch)
            change = float(column_sums(difference).sum() / max(column_sums(self._previous).sum(), 1e-30))
        self._previous = a

        self._token_sum += a
        if self.unit_step_scaled_sum is not None:
            unit_token_maps = a[:, self.unit_tokens]  # (Q, K) the maps of the units' tokens
            for reduction, total in self.unit_step_scaled_sum.items():
                units = self.reduce_units(unit_token_maps, reduction)
                step_max = float(units.max()) if units.size else 0.0
                if step_max > 0:
                    total += units / step_max
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

    def reduce_units(self, token_maps: np.ndarray, reduction: str) -> np.ndarray:
        """(U, Q) each unit's map from the maps (Q, K) of the units' tokens (``self.unit_tokens``):
        the sum, mean or max over the unit's sub-tokens (see :data:`WORD_REDUCTIONS`)."""
        if reduction not in WORD_REDUCTIONS:
            raise ValueError(f"unknown word reduction {reduction!r}; choose from {', '.join(WORD_REDUCTIONS)}")
        maps = np.zeros((len(self.units), token_maps.shape[0]), dtype=np.float64)
        for u, columns in enumerate(self._unit_columns):
            if columns.size == 0:
                continue
            values = token_maps[:, columns]
            maps[u] = (values.sum(axis=1, dtype=np.float64) if reduction == "sum"
                       else values.mean(axis=1, dtype=np.float64) if reduction == "mean" else values.max(axis=1))
        return maps

    def unit_maps(self, step_scaled: bool = False, reduction: str = "sum") -> np.ndarray:
        """(U, Q) per-word maps M_w, the mean over the analysed steps of each word's tokens' maps, reduced over the
        word's sub-tokens by ``reduction`` (sum, mean or max: the max of the step-mean token maps); ``step_scaled``:
        the mean of the steps' maps each scaled to its step's maximum (kept only for ``normalize="per-step"``)."""
        if step_scaled:
            if self.unit_step_scaled_sum is None:
                raise ValueError('per-step maps were not kept: build the Accumulator with normalize="per-step"')
            return self.unit_step_scaled_sum[reduction] / max(self.count, 1)
        return self.reduce_units(self._token_sum[:, self.unit_tokens] / max(self.count, 1), reduction)

    def layer_profile(self) -> np.ndarray:
        """(L, T) mean over steps of each layer's token mass."""
        return self.layer_token_mass_sum / max(self.count, 1)

    def head_means(self) -> dict[str, np.ndarray]:
        """Per-head summaries averaged over the analysed steps: "entropy", "padding" (L, H), "token_mass" (L, H, T)."""
        return {name: total / max(self.head_count, 1) for name, total in self.head_sums.items()}

    def padding_by_step_layer(self) -> np.ndarray:
        """(S, L) mean padding mass of each step and layer."""
        return np.asarray(self.layer_padding)


# --- after the pass ---------------------------------------------------------------------

def word_maps(stats: Accumulator, grid: tuple[int, int, int], reduction: str = "sum") -> np.ndarray:
    """(units, F', H', W') per-word maps in [0, 1], each word's sub-token maps reduced by ``reduction``
    (``--word-reduction``), scaled as ``stats.normalize`` (``--normalize``) says.

    The one place the mode is applied:
    global: one scale for every word and frame, so words compare with each other.
    per-step: the maps of steps each scaled to its own maximum, averaged; then one scale for
        all, so every step weighs the same.
    per-frame: each word's latent frame on its own scale, to see the layout where mass is low.
    per-word: each word on its own scale over all its frames.
    """
    mode = stats.normalize  # one of options.NORMALIZE_MODES: Options.check has refused any other
    maps = stats.unit_maps(step_scaled=mode == "per-step", reduction=reduction).reshape(-1, *grid)
    if mode == "per-frame":
        scale = maps.max(axis=(2, 3))
    elif mode == "per-word":
        scale = np.repeat(maps.max(axis=(1, 2, 3))[:, None], maps.shape[1], axis=1)
    else:  # global, per-step
        scale = np.full(maps.shape[:2], maps.max() if maps.size else 1.0)
    scale = np.where(scale > 0, scale, 1.0)
    return np.clip(maps / scale[:, :, None, None], 0.0, 1.0)


def segment_winners(stats: Accumulator, grid: tuple[int, int, int]) -> np.ndarray:
    """(F', H', W') the winning unit of each location: argmax_w M_w[q] of the unscaled step-mean word maps,
    each the max over the word's sub-tokens (:data:`SEGMENTATION_REDUCTION`).

    Deliberately independent of ``--normalize``: a per-word or per-frame scale would let a
    word with little attention win wherever its own maximum is, so the segmentation always
    compares the words' actual attention (the report's "Segment share" says so). And
    independent of ``--word-reduction``: the sum would let a word win for being split into
    more tokens, the mean would make it lose for a weakly attended piece (a plural "s");
    the max compares each word's most attended token, whatever the split: a location goes
    to the word of the token with the most step-mean attention there.
    """
    return np.argmax(stats.unit_maps(reduction=SEGMENTATION_REDUCTION).reshape(-1, *grid), axis=0)


def segment_share(winners: np.ndarray, num_units: int) -> np.ndarray:
    """(units,) the fraction of locations each unit wins."""
    return np.bincount(winners.ravel(), minlength=num_units) / winners.size


def layer_profile(stats: Accumulator, reduction: str = "sum") -> np.ndarray:
    """(layers, units) each layer's word attention (its token masses reduced per unit by ``reduction``, as the
    word maps are), each row divided by its sum."""
    masses = stats.layer_profile()  # (L, T)
    profile = stats.reduce_units(masses[:, stats.unit_tokens], reduction).T  # (L, U)
    return profile / np.maximum(profile.sum(axis=1, keepdims=True), 1e-30)


@dataclass(frozen=True)
class HeadStat:
    layer_block: int
    head: int
    entropy: float  # mean over steps of the head's mean query entropy over all keys (nats)
    padding: float  # mean over steps of the head's mean padding mass
    top_token: int  # token with the largest mean probability for this head
    top_token_mass: float


def rank_heads(mean_entropy: np.ndarray, mean_mass: np.ndarray, mean_padding: np.ndarray,
               layer_blocks: list[int]) -> list[HeadStat]:
    """All heads, most focused (lowest entropy) first, from the per-head summaries the recorder keeps.

    Means over the analysed steps: entropy, padding (layers, heads); token mass (layers, heads, tokens).
    """
    stats = []
    for layer, block in enumerate(layer_blocks):
        for head in range(mean_entropy.shape[1]):
            top = int(np.argmax(mean_mass[layer, head]))
            stats.append(HeadStat(block, head, float(mean_entropy[layer, head]), float(mean_padding[layer, head]),
                                  top, float(mean_mass[layer, head, top])))
    return sorted(stats, key=lambda s: (s.entropy, s.layer_block, s.head))


def conclude(selection: Selection, stats: Accumulator, steps: list[Step], skipped: list[StepError],
             started: float) -> Analysis:
    """The analysis, once the pass is over: the statistics accumulated, and what is derived from them."""
    means = stats.head_means()
    winners = segment_winners(stats, selection.view.grid)
    separate = selection.view.layers_separate and len(selection.layers) > 1
    return Analysis(selection=selection, steps=tuple(steps), stats=stats,
                    heads=tuple(rank_heads(means["entropy"], means["token_mass"], means["padding"],
                                           selection.layer_blocks)),
                    layer_profile=layer_profile(stats, selection.options.word_reduction) if separate else None,
                    winners=winners, segment_share=segment_share(winners, len(selection.units)),
                    skipped=tuple(skipped), started=started)
