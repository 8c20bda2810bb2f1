"""Two stores side by side (two prompts, two seeds or two models): ``wan-analyze compare A B -o OUT``.

For the words both prompts share (same text, case-insensitive, among the words the CLI
shows by default: neither special nor punctuation; the k-th "a" of A pairs with the k-th
"a" of B), one figure per word: A's map, B's map and A - B on a diverging colour scale
centred at 0, for a few latent frames. Each map is the word's map as
:meth:`analyzer.recording.Recording.word_map` gives it (``reduce="sum"``, no
normalisation): the mean over every complete step and every layer of the sum over the
word's sub-tokens of its attention probability, at each latent location. The maps of all
words come from one streaming pass per store (``word_map`` would run one pass per word);
they are the same numbers.

When the latent grids differ, B's map is resampled onto A's grid and the report says so:
each latent frame of A takes the latent frame of B at the nearest relative time
(f_B = round(f_A (F_B - 1) / (F_A - 1))), resized bilinearly in space (PIL). The values
are per-location probabilities, so resampling keeps their scale (nothing is rescaled by area).

Then the statistics of both stores (:meth:`Recording.statistics`, the numbers of
``attention_statistics.json``) with their differences, into ``comparison.json`` and
``comparison_report.md``. Every difference is A - B.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analyzer import output
from analyzer.errors import AnalyzerError
from analyzer.options import Analysis
from analyzer.recording import Recording, open_recording
from analyzer.text import file_stem, label, ranges
from analyzer.text import markdown as md
from shared.schema import Attr

COMPARISON = "comparison.json"
REPORT = "comparison_report.md"
SCHEMA = "wan-attention-comparison"
SCHEMA_VERSION = "1.0"
DEFAULT_FRAMES = 4


@dataclass
class Side:
    """One store of the comparison: the recording, its analysis (one pass) and its statistics."""

    name: str  # "A" or "B"
    location: str
    recording: Recording
    analysis: Analysis
    statistics: dict

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.analysis.view.grid)

    def word_map(self, unit_position: int) -> np.ndarray:
        """(F, H, W) float64: the unit's map, as ``Recording.word_map(index, reduce="sum")`` gives it."""
        maps = self.analysis.stats.unit_maps(reduction="sum")
        return np.asarray(maps[unit_position], dtype=np.float64).reshape(self.grid)

    def describe(self) -> dict:
        attrs = self.recording.attrs
        return {"store": self.location, "prompt": self.recording.prompt, "seed": _plain(attrs.get(Attr.SEED)),
                "model_id": _plain(attrs.get(Attr.MODEL_ID)), "status": self.recording.status,
                "grid": list(self.grid), "steps_analysed": [s.index for s in self.analysis.steps],
                "layers": [int(b) for b in self.analysis.layer_blocks]}


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_stores` wrote and found."""

    out: Path
    json_path: Path
    report_path: Path
    figures: list[Path]
    shared_words: list[str]
    resampled: bool


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _diff(a, b) -> float | None:
    return None if a is None or b is None else _num(a - b)


def _open(name: str, location: str, storage_options: dict | None) -> Side:
    from analyzer.outputs.statistics import statistics_document

    recording = open_recording(location, storage_options)
    try:
        analysis = recording.analysis(word_reduction="sum")
    except AnalyzerError as exc:
        if "include-special" not in str(exc):
            raise
        analysis = recording.analysis(word_reduction="sum", include_special=True)  # no word to share: still compared
    return Side(name, os.fspath(location), recording, analysis, statistics_document(analysis))


def shared_words(a: Side, b: Side) -> list[tuple[str, int, int]]:
    """(text, unit position in A, unit position in B) of the words both show, in A's order.

    Only words (not special, not punctuation) are paired, by case-folded text; the k-th
    occurrence of a text in A pairs with its k-th occurrence in B.
    """
    def occurrences(side: Side) -> dict[str, list[int]]:
        words = side.analysis.view.words
        found: dict[str, list[int]] = defaultdict(list)
        for position, unit in enumerate(side.analysis.units):
            if unit.kind != "word":
                continue
            word = words[unit.index]
            if word.special or word.punctuation:
                continue
            found[word.text.casefold()].append(position)
        return found

    in_b = occurrences(b)
    pairs, used = [], defaultdict(int)
    for position, unit in enumerate(a.analysis.units):
        word = a.analysis.view.words[unit.index] if unit.kind == "word" else None
        if word is None or word.special or word.punctuation:
            continue
        key = word.text.casefold()
        k = used[key]
        if k < len(in_b.get(key, [])):
            pairs.append((word.text, position, in_b[key][k]))
        used[key] += 1
    return pairs


def frame_correspondence(frames_a: int, frames_b: int) -> list[int]:
    """For each latent frame of A, the frame of B at the nearest relative time."""
    if frames_a <= 1:
        return [0] * frames_a
    return [round(f * (frames_b - 1) / (frames_a - 1)) for f in range(frames_a)]


def resample(maps: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """An (F_B, H_B, W_B) map on the grid (F_A, H_A, W_A): nearest frame by relative time, bilinear in space."""
    from PIL import Image

    frames, height, width = grid
    out = np.empty((frames, height, width), dtype=np.float64)
    for f, source in enumerate(frame_correspondence(frames, maps.shape[0])):
        plane = maps[source]
        if plane.shape == (height, width):
            out[f] = plane
        else:
            image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
            out[f] = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)
    return out


def shown_frames(frames: int, count: int) -> list[int]:
    """Up to ``count`` latent frames, evenly spread from the first to the last."""
    if frames <= count:
        return list(range(frames))
    return sorted({int(np.rint(v)) for v in np.linspace(0, frames - 1, count)})


def _figure(text: str, map_a: np.ndarray, map_b: np.ndarray, frames: list[int], resampled: bool,
            name_a: str, name_b: str):
    from matplotlib.figure import Figure

    diff = map_a - map_b
    top = max(float(map_a.max(initial=0.0)), float(map_b.max(initial=0.0)), 1e-12)
    spread = max(float(np.abs(diff).max(initial=0.0)), 1e-12)
    height, width = map_a.shape[1:]
    cell = 2.2
    figure = Figure(figsize=(cell * len(frames) * max(width / max(height, 1), 0.6) + 1.2, cell * 3 + 0.8), dpi=90)
    axes = figure.subplots(3, len(frames), squeeze=False)
    rows = ((map_a, "A", "viridis", 0.0, top),
            (map_b, "B, resampled" if resampled else "B", "viridis", 0.0, top),
            (diff, "A - B", "RdBu_r", -spread, spread))
    for r, (values, title, cmap, low, high) in enumerate(rows):
        image = None
        for c, f in enumerate(frames):
            ax = axes[r][c]
            image = ax.imshow(values[f], cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"latent frame {f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
        figure.colorbar(image, ax=list(axes[r]), fraction=0.03, pad=0.02)
    figure.suptitle(f"{label(text, 30)}: mean over steps and layers\nA: {label(name_a, 50)}   B: {label(name_b, 50)}",
                    fontsize=9)
    return figure


def _map_metrics(map_a: np.ndarray, map_b: np.ndarray) -> dict:
    diff = map_a - map_b
    a, b = map_a.ravel(), map_b.ravel()
    correlation = None
    if a.size > 1 and a.std() > 0 and b.std() > 0:
        correlation = _num(np.corrcoef(a, b)[0, 1])
    return {"mean_a": _num(a.mean()), "mean_b": _num(b.mean()), "max_a": _num(a.max()), "max_b": _num(b.max()),
            "mean_abs_difference": _num(np.abs(diff).mean()), "max_abs_difference": _num(np.abs(diff).max()),
            "correlation": correlation}


def _word_rows(a: Side, b: Side, pairs) -> list[dict]:
    rows_a = {r["index"]: r for r in a.statistics["words"]}
    rows_b = {r["index"]: r for r in b.statistics["words"]}
    rows = []
    for text, ua, ub in pairs:
        ra = rows_a[a.analysis.units[ua].index]
        rb = rows_b[b.analysis.units[ub].index]
        rows.append({"text": text, "word_index_a": ra["index"], "word_index_b": rb["index"],
                     "share_a": ra["share"], "share_b": rb["share"],
                     "share_difference": _diff(ra["share"], rb["share"]),
                     "mass_a": ra["mass"], "mass_b": rb["mass"], "mass_difference": _diff(ra["mass"], rb["mass"]),
                     "rank_a": ra["rank"], "rank_b": rb["rank"]})
    return rows


def _step_comparison(a: Side, b: Side, pairs) -> dict | None:
    """Per step (when both analysed the same step indices): text entropy, padding and each shared word's share."""
    steps_a = [s.index for s in a.analysis.stats.steps]
    steps_b = [s.index for s in b.analysis.stats.steps]
    if steps_a != steps_b:
        return None

    def word_share(side: Side, unit_position: int, summary) -> float:
        tokens = list(side.analysis.units[unit_position].tokens)
        return float(summary.token_mass[tokens].sum() / max(float(summary.token_mass.sum()), 1e-30))

    rows = []
    for sa, sb in zip(a.analysis.stats.steps, b.analysis.stats.steps):
        row = {"index": sa.index, "text_entropy_a": _num(sa.text_entropy), "text_entropy_b": _num(sb.text_entropy),
               "text_entropy_difference": _num(sa.text_entropy - sb.text_entropy),
               "padding_a": _num(sa.padding), "padding_b": _num(sb.padding),
               "padding_difference": _num(sa.padding - sb.padding), "words": []}
        for text, ua, ub in pairs:
            share_a, share_b = word_share(a, ua, sa), word_share(b, ub, sb)
            row["words"].append({"text": text, "share_a": _num(share_a), "share_b": _num(share_b),
                                 "share_difference": _num(share_a - share_b)})
        rows.append(row)
    return {"steps": steps_a, "rows": rows}


def _overall(a: Side, b: Side) -> dict:
    def pick(stats: dict) -> dict:
        return {"text_entropy_mean": stats["entropy"]["text_entropy_mean"],
                "padding_mean": stats["padding"]["mean"], "winner_stability": stats["winner_stability"]}

    pa, pb = pick(a.statistics), pick(b.statistics)
    return {key: {"a": pa[key], "b": pb[key], "difference": _diff(pa[key], pb[key])} for key in pa}


def compare_stores(store_a: str | os.PathLike, store_b: str | os.PathLike, out: str | os.PathLike, *,
                   overwrite: bool = False, frames: int = DEFAULT_FRAMES,
                   storage_options: dict | None = None) -> Comparison:
    """Compare two stores into the directory ``out`` (refused when not empty, unless ``overwrite``).

    Raises :class:`shared.store.StoreError` or :class:`AnalyzerError`, one line, for a store it cannot use.
    """
    if frames < 1:
        raise AnalyzerError(f"--frames must be at least 1, not {frames}")
    output.check_directory(out, store_a)
    output.check_directory(out, store_b)
    a = _open("A", os.fspath(store_a), storage_options)
    b = _open("B", os.fspath(store_b), storage_options)
    target = output.prepare_directory(out, overwrite)

    pairs = shared_words(a, b)
    resampled = a.grid != b.grid
    correspondence = frame_correspondence(a.grid[0], b.grid[0]) if resampled else None
    chosen = shown_frames(a.grid[0], frames)
    figures, map_rows = [], []
    for i, (text, ua, ub) in enumerate(pairs):
        map_a = a.word_map(ua)
        map_b = b.word_map(ub)
        if resampled:
            map_b = resample(map_b, a.grid)
        path = output.save_figure(_figure(text, map_a, map_b, chosen, resampled, a.recording.prompt,
                                          b.recording.prompt), target / file_stem(text, i, "compare"), "png")
        figures.append(path)
        map_rows.append({"text": text, "figure": path.name, **_map_metrics(map_a, map_b)})

    document = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "a": a.describe(), "b": b.describe(),
        "grids_match": not resampled,
        "resampling": None if not resampled else {
            "from_grid": list(b.grid), "to_grid": list(a.grid), "frames": "nearest relative time",
            "space": "bilinear", "frame_of_b": correspondence},
        "shown_frames": chosen,
        "shared_words": [text for text, _, _ in pairs],
        "words": _word_rows(a, b, pairs),
        "maps": map_rows,
        "steps": _step_comparison(a, b, pairs),
        "overall": _overall(a, b),
        "statistics": {"a": a.statistics, "b": b.statistics},
    }
    json_path = target / COMPARISON
    json_path.write_text(json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                         encoding="utf-8")
    report_path = target / REPORT
    report_path.write_text("\n".join(_report(document, a, b)) + "\n", encoding="utf-8")
    return Comparison(target, json_path, report_path, figures, [t for t, _, _ in pairs], resampled)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _report(doc: dict, a: Side, b: Side) -> list[str]:
    lines = ["# Comparison of two recordings", ""]
    lines += ["| | A | B |", "| --- | --- | --- |"]
    da, db = doc["a"], doc["b"]
    for key, title in (("store", "store"), ("prompt", "prompt"), ("seed", "seed"), ("model_id", "model"),
                       ("status", "status")):
        lines.append(f"| {title} | {md(da[key])} | {md(db[key])} |")
    lines.append(f"| latent grid (F, H, W) | {' x '.join(map(str, da['grid']))} | {' x '.join(map(str, db['grid']))} |")
    lines.append(f"| steps analysed | {ranges(da['steps_analysed'])} | {ranges(db['steps_analysed'])} |")
    lines.append(f"| layers | {md(ranges(da['layers']))} | {md(ranges(db['layers']))} |")
    lines.append("")
    lines.append("Every difference is A - B. A word's map is the mean over the store's complete steps and its "
                 "layers of the sum over the word's sub-tokens of the attention probability at each latent location "
                 "(`word_map(word, reduce=\"sum\")`); A, B share one colour scale, A - B a diverging one centred at 0.")
    lines.append("")
    if doc["resampling"]:
        r = doc["resampling"]
        lines.append(f"**The latent grids differ**: B's maps ({' x '.join(map(str, r['from_grid']))}) were resampled "
                     f"onto A's grid ({' x '.join(map(str, r['to_grid']))}) before the differences: each frame of A "
                     f"takes B's frame at the nearest relative time (B's frames {r['frame_of_b']}), resized "
                     "bilinearly in space. The map figures and their numbers below are on A's grid.")
    else:
        lines.append("The latent grids match: the differences are location by location, with no resampling.")
    lines.append("")
    lines.append("## Words both prompts share")
    lines.append("")
    if not doc["words"]:
        lines.append("The prompts share no word (special and punctuation tokens are not compared).")
    else:
        lines += ["| word | share A | share B | A - B | rank A | rank B | map mean abs diff | map correlation "
                  "| figure |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row, maps in zip(doc["words"], doc["maps"]):
            lines.append(f"| {md(row['text'])} | {_fmt(row['share_a'])} | {_fmt(row['share_b'])} | "
                         f"{_fmt(row['share_difference'])} | {row['rank_a']} | {row['rank_b']} | "
                         f"{_fmt(maps['mean_abs_difference'])} | {_fmt(maps['correlation'])} | "
                         f"[{md(maps['figure'])}]({maps['figure']}) |")
        lines.append("")
        lines.append(f"Share: the word's attention mass over all analysed steps as a fraction of all text tokens' "
                     f"mass (as `attention_statistics.json`). Figures show latent frames {doc['shown_frames']}.")
        lines.append("")
        for maps in doc["maps"]:
            lines.append(f"![{md(maps['text'])}]({maps['figure']})")
            lines.append("")
    lines.append("## Overall")
    lines.append("")
    lines += ["| statistic | A | B | A - B |", "| --- | --- | --- | --- |"]
    for key, values in doc["overall"].items():
        lines.append(f"| {key.replace('_', ' ')} | {_fmt(values['a'])} | {_fmt(values['b'])} | "
                     f"{_fmt(values['difference'])} |")
    lines.append("")
    lines.append("## By step")
    lines.append("")
    if doc["steps"] is None:
        lines.append("The stores analysed different steps "
                     f"(A: {ranges(da['steps_analysed'])}; B: {ranges(db['steps_analysed'])}), so no step-by-step "
                     "differences are given; each store's own are in comparison.json under statistics.")
    else:
        words = doc["shared_words"]
        head = "| step | text entropy A | text entropy B | A - B |" + "".join(f" {md(w)} A - B |" for w in words)
        lines += [head, "|" + " --- |" * (4 + len(words))]
        for row in doc["steps"]["rows"]:
            lines.append(f"| {row['index']} | {_fmt(row['text_entropy_a'])} | {_fmt(row['text_entropy_b'])} | "
                         f"{_fmt(row['text_entropy_difference'])} |"
                         + "".join(f" {_fmt(w['share_difference'])} |" for w in row["words"]))
        lines.append("")
        lines.append("Text entropy: the mean over locations of the entropy (nats) of each location's attention over "
                     "the text tokens; a word's column is the difference of its share of the step's attention.")
    lines.append("")
    lines.append("Every number at full precision, with both stores' complete statistics: "
                 f"[{COMPARISON}]({COMPARISON}).")
    return lines
