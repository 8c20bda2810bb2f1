"""A store reduced to what the viewer page shows, within a size budget.

The page shows, per branch and word, a map on the latent grid (F' x H' x W') for one
"slice": a step (or the mean over the steps) and a layer entry (or the mean over the
layers). A word's map is the sum of its sub-tokens' attention. Each map is quantised to
8 bits against its own maximum, which is kept as its scale (value = byte / 255 * scale).

:func:`build_page_data` reads the store one step at a time through :class:`StoreView`
and keeps, in this order while they fit in the budget: the mean over steps and layers;
the mean over layers of every step (steps thinned evenly when they do not all fit); the
mean over steps of each layer entry (an even choice of them when not all fit); every
kept step of every kept layer entry (all or nothing). The video's frames are small JPEGs.
What was left out is listed in ``reductions``, which the page shows.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field

import numpy as np

from analyzer.errors import StepError
from analyzer.reader import Step, StoreView
from analyzer.statistics import membership, reduce_step
from analyzer.text import block_label
from shared import schema

MEAN = "mean"
DEFAULT_BUDGET = 20 * 2**20  # bytes of the page's data, about what the HTML file weighs
FRAME_WIDTH = 480  # the largest width of a video frame in the page
JPEG_QUALITY = 80
FRAMES_SHARE = 0.35  # at most this share of the budget goes to the video's frames
FPS = 16  # Wan's frame rate
LAYERS_RESERVED = 4  # single layers (averaged over the steps) kept in preference to the last few steps


@dataclass
class BranchPlan:
    branch: str
    view: StoreView
    steps: list[Step]  # the complete steps usable, in order


@dataclass
class PageData:
    """The page's JSON (``meta``), the maps by slice key and the frames as data URIs."""

    meta: dict
    slices: dict[str, dict] = field(default_factory=dict)
    frames: list[str | None] = field(default_factory=list)

    def as_json_object(self) -> dict:
        return {"mode": "inline", "meta": self.meta, "slices": self.slices, "frames": self.frames}


def slice_key(branch: str, step: int | str, layer: int | str) -> str:
    return f"{branch}|{step}|{layer}"


def word_groups(view: StoreView) -> list[tuple[int, ...]]:
    return [w.tokens for w in view.words]


def quantise(maps: np.ndarray) -> dict:
    """(W, Q) float maps -> {"scales": [W floats], "maps": [W base64 strings of Q bytes]}.

    In float32, in place: the bytes are within one step of float64's (a value exactly between two
    steps may round the other way), at a third of the cost on a page's twenty-odd 33k-value maps.
    """
    maps = np.array(maps, dtype=np.float32)  # a copy: scaled in place below
    scales = maps.max(axis=1) if maps.size else np.zeros(len(maps), dtype=np.float32)
    scales = np.where(np.isfinite(scales) & (scales > 0), scales, np.float32(0))
    factors = np.divide(np.float32(255), scales, out=np.zeros_like(scales), where=scales > 0)
    np.multiply(maps, factors[:, None], out=maps)
    np.rint(maps, out=maps)
    np.clip(maps, 0, 255, out=maps)
    q = maps.astype(np.uint8)
    return {"scales": [float(s) for s in scales],
            "maps": [base64.b64encode(row.tobytes()).decode("ascii") for row in q]}


def segmentation_words(view: StoreView) -> list[int]:
    """The words a location can be given to: not special, not punctuation (all of them if that leaves none)."""
    chosen = [w.index for w in view.words if not w.special and not w.punctuation]
    return chosen or [w.index for w in view.words]


def winners_of(attention: np.ndarray, view: StoreView, allowed: list[int]) -> np.ndarray:
    """(Q,) uint16: the word each location attends to most, as the analyzer's segmentation decides it.

    A word's value is its largest sub-token's (``statistics.SEGMENTATION_REDUCTION``), so a word
    does not win for being split into more tokens.
    """
    values = np.stack([attention[:, list(view.words[w].tokens)].max(axis=1) for w in allowed], axis=1)
    return np.asarray(allowed, dtype=np.uint16)[np.argmax(values, axis=1)]


def slice_payload(attention: np.ndarray, view: StoreView, member: np.ndarray) -> dict:
    """A slice for the page from its (Q, T) attention: the words' 8-bit maps and each location's winner."""
    payload = quantise(word_maps_of(attention, member))
    winners = winners_of(attention, view, segmentation_words(view)).astype("<u2")
    payload["winners"] = base64.b64encode(winners.tobytes()).decode("ascii")
    return payload


def word_maps_of(attention: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(Q, T) float32 attention -> (W, Q) float32 maps, each word's sub-tokens summed."""
    return np.ascontiguousarray((attention @ member).T)


def word_shares(attention_mean: np.ndarray, member: np.ndarray) -> list[float]:
    """Each word's share of the step's token mass (layer mean), summed over its sub-tokens."""
    mass = attention_mean.sum(axis=0, dtype=np.float64)
    total = mass.sum()
    words = mass @ member.astype(np.float64)
    return [float(x) for x in (words / total if total > 0 else np.zeros_like(words))]


def frame_jpeg(frame: np.ndarray, width: int | None, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if width is not None and image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def usable_steps(view: StoreView) -> list[Step]:
    return [s for s in view.complete_steps if s.position not in view.step_problems]


def thin(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items``, the first and last among them."""
    if count >= len(items):
        return list(items)
    if count <= 0:
        return []
    if count == 1:
        return [items[-1]]
    picks = sorted({round(i * (len(items) - 1) / (count - 1)) for i in range(count)})
    return [items[i] for i in picks]


def _json_value(value, depth: int = 0):
    """An attribute as JSON the page can show (NaN and big integers as text)."""
    if isinstance(value, dict) and depth < 4:
        return {str(k): _json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and depth < 4:
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def open_branches(location, storage_options=None) -> list[BranchPlan]:
    first = StoreView(location, schema.BRANCH_COND if schema.BRANCH_COND in _branches(location, storage_options)
                      else _branches(location, storage_options)[0], storage_options)
    plans = []
    for branch in first.branches:
        view = first if branch == first.branch else StoreView(location, branch, storage_options)
        plans.append(BranchPlan(branch, view, usable_steps(view)))
    return plans


def _branches(location, storage_options) -> list[str]:
    from shared.store import open_store

    root = open_store(location, storage_options)
    options = dict(root.attrs.asdict().get(schema.Attr.RECORD_OPTIONS) or {})
    branches = options.get(schema.RecordOption.BRANCHES, [schema.BRANCH_COND])
    return [str(b) for b in branches] if isinstance(branches, list) and branches else [schema.BRANCH_COND]


def base_meta(plans: list[BranchPlan]) -> dict:
    """What the page needs to lay itself out: words, steps, layers, grid, frames, metadata."""
    view = plans[0].view
    frames, height, width = view.grid
    branches = []
    for plan in plans:
        v = plan.view
        branches.append({
            "name": plan.branch,
            "prompt": v.prompt,
            "words": [{"text": w.text, "tokens": list(w.tokens), "special": w.special,
                       "punctuation": w.punctuation} for w in v.words],
            "steps": [{"position": s.position, "index": s.index, "timestep": s.timestep, "sigma": s.sigma,
                       "expert": s.expert} for s in plan.steps],
        })
    return {
        "title": f"wan-attention viewer: {view.prompt}",
        "location": view.location,
        "status": view.status,
        "grid": [frames, height, width],
        "pixel_frames": [list(span) for span in view.pixel_frames],
        "num_video_frames": view.num_video_frames,
        "video_shape": [int(n) for n in view.video.shape],
        "video_written": [bool(x) for x in view.video_written],
        "fps": FPS,
        "layers": [{"entry": i, "block": b, "label": block_label(b, "block ")}
                   for i, b in enumerate(view.layer_blocks)],
        "branches": branches,
        "attributes": _json_value(view.attrs),
        "missing_steps": [s.index for s in view.missing_steps],
        "problem_steps": {str(k): v for k, v in view.step_problems.items()},
    }


@dataclass
class PagePlan:
    """What the page keeps, decided before any map is read: its data so far, the steps and layers it keeps."""

    data: PageData
    plans: list[BranchPlan]
    step_count: int  # steps kept per branch (evenly spaced)
    kept_layers: list[int]  # layer entries kept singly (averaged over the steps; per step too when ``both``)
    both: bool
    reductions: list[str]
    budget_bytes: int


def plan_page(location, *, storage_options: dict | None = None, budget_bytes: int = DEFAULT_BUDGET,
              frame_width: int = FRAME_WIDTH) -> PagePlan:
    """The page's metadata and video frames, and which maps fit in what is left of ``budget_bytes``."""
    plans = open_branches(location, storage_options)
    view = plans[0].view
    meta = base_meta(plans)
    reductions: list[str] = []
    data = PageData(meta)

    # the frames: small JPEGs, smaller still when they would take too much of the budget
    frames_budget = budget_bytes * FRAMES_SHARE
    width, quality = frame_width, JPEG_QUALITY
    written = [i for i in range(view.num_video_frames) if view.video_written[i]]
    while True:
        encoded: list[str | None] = [None] * view.num_video_frames
        total = 0
        for i in written:
            jpeg = frame_jpeg(view.read_video_frame(i), width, quality)
            encoded[i] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
            total += len(encoded[i])
            if total > frames_budget:
                break
        if total <= frames_budget or width <= 64:
            break
        width, quality = width // 2, max(50, quality - 10)
    if total > frames_budget:  # still too big at 64 px: keep every k-th frame
        keep = max(1, int(len(written) * frames_budget / max(total, 1)))
        kept = set(thin(written, keep))
        encoded = [e if i in kept else None for i, e in enumerate(encoded)]
        reductions.append(f"video: {len(kept)} of {len(written)} frames kept")
    data.frames = encoded
    frames_bytes = sum(len(e) for e in encoded if e)
    shown_width = min(width, int(view.video.shape[2]))
    if shown_width < int(view.video.shape[2]):
        reductions.append(f"video: frames scaled to {shown_width} px wide (from {int(view.video.shape[2])}), "
                          f"JPEG quality {quality}")
    not_written = view.num_video_frames - len(written)
    if not_written:
        reductions.append(f"video: {not_written} frames were not recorded")

    # the maps: plan what fits; they are read (or handed over by the analysis) one step at a time afterwards
    queries = int(np.prod(view.grid))
    # per word: base64 of one byte per query, and its scale; per slice: two bytes of segmentation per query
    slice_bytes = sum(4 * math.ceil(queries / 3) * len(p.view.words) + 24 * len(p.view.words)
                      + 4 * math.ceil(2 * queries / 3) for p in plans)
    from analyzer.viewer.page import script_json

    # the page itself (about 40 kB) and the metadata, with room for the word shares
    shares_bytes = sum(len(p.steps) * len(p.view.words) * 24 for p in plans)
    remaining = budget_bytes - frames_bytes - 60_000 - len(script_json(meta)) - shares_bytes
    all_steps = max(len(p.steps) for p in plans)
    n_layers = len(view.layer_blocks)
    per_layer = view.layers_separate and n_layers > 1

    def take(count_wanted: int) -> int:
        nonlocal remaining
        count = max(0, min(count_wanted, int(remaining // slice_bytes)))
        remaining -= count * slice_bytes
        return count

    take(1)  # the mean over steps and layers, always kept
    # the steps, leaving room for a few single layers (averaged over the steps) when the store has them
    layers_wanted = min(n_layers, LAYERS_RESERVED) if per_layer else 0
    step_count = max(0, min(all_steps, int(remaining // slice_bytes) - layers_wanted))
    remaining -= step_count * slice_bytes
    layer_count = take(n_layers) if per_layer else 0
    both = per_layer and step_count > 0 and layer_count > 0 and remaining >= step_count * layer_count * slice_bytes
    kept_layers = thin(list(range(n_layers)), layer_count) if per_layer else []
    if step_count < all_steps:
        reductions.append(f"steps: {step_count} of {all_steps} kept (evenly spaced); the word shares plot has "
                          f"every step; 'mean over steps' uses every step")
    if per_layer and layer_count < n_layers:
        reductions.append(f"layers: {layer_count} of {n_layers} layer entries kept "
                          f"({', '.join(meta['layers'][i]['label'] for i in kept_layers) or 'none'}); "
                          f"'mean over layers' uses every layer")
    if per_layer and layer_count and not both:
        reductions.append("single layers are kept averaged over the steps only (no single step of a single layer)")
    reductions.append("maps: 8 bits per value, each map scaled to its own maximum")
    return PagePlan(data, plans, step_count, kept_layers, both, reductions, budget_bytes)


class BranchMaps:
    """One branch's maps for the page, taken one step at a time: the layer mean of every usable step, in order,
    with the single layers the page keeps (``PagePlan.kept_layers``), or the step's error."""

    def __init__(self, page: PagePlan, plan: BranchPlan):
        self.page, self.plan, self.view = page, plan, plan.view
        self.member = membership(len(self.view.tokens), word_groups(self.view))
        self.kept_steps = {s.position for s in thin(plan.steps, page.step_count)}
        queries, n_tokens = int(np.prod(self.view.grid)), len(self.view.tokens)
        self.mean_sum = np.zeros((queries, n_tokens), dtype=np.float32)
        self.layer_sum = {layer: np.zeros((queries, n_tokens), dtype=np.float32) for layer in page.kept_layers}
        self.shares: list[list[float] | None] = []
        self.skipped: list[str] = []
        self.used = 0

    def add(self, step: Step, mean: np.ndarray, single_layers: dict[int, np.ndarray]) -> None:
        """A usable step: ``mean`` (Q, T) over every layer, ``single_layers`` (Q, T) float32 by kept layer entry."""
        data, branch, v = self.page.data, self.plan.branch, self.view
        self.used += 1
        self.mean_sum += mean
        self.shares.append(word_shares(mean, self.member))
        if step.position in self.kept_steps:
            data.slices[slice_key(branch, step.position, MEAN)] = slice_payload(mean, v, self.member)
        for layer in self.page.kept_layers:
            single = single_layers[layer]
            self.layer_sum[layer] += single
            if self.page.both and step.position in self.kept_steps:
                data.slices[slice_key(branch, step.position, layer)] = slice_payload(single, v, self.member)

    def skip(self, step: Step, reason: str) -> None:
        self.skipped.append(f"step {step.index}: {reason}")
        self.shares.append(None)

    def finish(self) -> None:
        data, branch, v = self.page.data, self.plan.branch, self.view
        if self.used:
            data.slices[slice_key(branch, MEAN, MEAN)] = slice_payload(self.mean_sum / self.used, v, self.member)
            for layer in self.page.kept_layers:
                data.slices[slice_key(branch, MEAN, layer)] = slice_payload(self.layer_sum[layer] / self.used, v,
                                                                           self.member)
        next(b for b in data.meta["branches"] if b["name"] == branch)["shares"] = self.shares
        if self.skipped:
            self.page.reductions.append(f"branch {branch}: skipped " + "; ".join(self.skipped))


def read_branch(page: PagePlan, plan: BranchPlan) -> None:
    """Read one branch's usable steps (every layer) into the page, one step at a time."""
    maps = BranchMaps(page, plan)
    layers_read = list(range(len(plan.view.layer_blocks)))
    for step in plan.steps:
        try:
            raw = plan.view.read_raw(step, layers_read)
            reduced = reduce_step(plan.view, raw, keep_layers=page.kept_layers)
        except StepError as exc:
            maps.skip(step, exc.reason)
            continue
        maps.add(step, reduced.attention, reduced.single_layers)
    maps.finish()


def finish_page(page: PagePlan) -> PageData:
    """The page's data once every branch's maps are in: what was left out, and which slices exist."""
    data = page.data
    data.meta["reductions"] = page.reductions
    data.meta["available"] = {plan.branch: sorted(k.split("|", 1)[1] for k in data.slices
                                                  if k.startswith(plan.branch + "|")) for plan in page.plans}
    data.meta["budget_bytes"] = page.budget_bytes
    return data


def build_page_data(location, *, storage_options: dict | None = None, budget_bytes: int = DEFAULT_BUDGET,
                    frame_width: int = FRAME_WIDTH) -> PageData:
    """Read the store (one step at a time) into a :class:`PageData` of about ``budget_bytes`` at most."""
    page = plan_page(location, storage_options=storage_options, budget_bytes=budget_bytes, frame_width=frame_width)
    for plan in page.plans:
        read_branch(page, plan)
    return finish_page(page)
