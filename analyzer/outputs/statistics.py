"""statistics: every number of the report, machine-readable: ``attention_statistics.json`` and its tables as CSV.

The JSON holds the numbers at full precision (the report prints them rounded), under a
``schema`` name and ``schema_version`` (a minor version for an addition, a major one for a
change a reader cannot follow). The CSV files are the report's tables where a table is
the natural form: tokens, words, steps, layers and heads. Every value is computed the way
:mod:`analyzer.outputs.report` computes what it prints, from the same :class:`Analysis`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from analyzer.options import Analysis
from analyzer.outputs.registry import Context, Output
from analyzer.statistics import membership
from analyzer.text import markdown as md
from shared.schema import Attr, GridKey

STATISTICS = "attention_statistics.json"
SCHEMA = "wan-attention-statistics"
SCHEMA_VERSION = "1.0"
TABLES = ("tokens", "words", "steps", "layers", "heads")


def table_name(table: str) -> str:
    return f"attention_statistics_{table}.csv"


def _num(value) -> float | int | None:
    """A JSON number (None for NaN/inf, which JSON has no word for)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value):
    """Attributes from the store as JSON values (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.generic, float)) and not isinstance(value, (bool, np.bool_)):
        return _num(value)
    return value


def _word_kind(word) -> str:
    return "special" if word.special else "punctuation" if word.punctuation else "word"


def statistics_document(analysis: Analysis) -> dict:
    """Every number the report shows (except the wall-clock time of the analysis), at full precision."""
    view, stats, units = analysis.view, analysis.stats, analysis.units
    attrs = view.attrs
    tokens = list(view.tokens)
    word_of_token = {t: w.text for w in view.words for t in w.tokens}
    grid = attrs.get(Attr.LATENT_GRID) or {}

    token_mass = stats.token_mass()
    total = max(float(token_mass.sum()), 1e-30)
    steps_won = stats.steps_won()
    win_share = stats.location_win_share()
    spatial = stats.spatial_entropy()
    n_queries = stats.num_queries
    modal = np.bincount(stats.modal_winner(), minlength=len(tokens)) / max(n_queries, 1)
    rank_of = {int(t): r + 1 for r, t in enumerate(np.argsort(-token_mass, kind="stable"))}
    token_rows = [{
        "index": t, "token": tokens[t], "word": word_of_token.get(t, ""), "rank": rank_of[t],
        "mass": _num(token_mass[t]), "share": _num(token_mass[t] / total), "steps_won": int(steps_won[t]),
        "location_win_share": _num(win_share[t]), "spatial_entropy": _num(spatial[t]),
        "spatial_entropy_normalised": _num(spatial[t] / math.log(n_queries) if n_queries > 1 else 0.0),
        "modal_location_share": _num(modal[t]),
    } for t in range(len(tokens))]

    masses = [float(token_mass[list(w.tokens)].sum()) for w in view.words]
    word_order = sorted(range(len(view.words)), key=lambda i: -masses[i])
    word_rank = {i: r + 1 for r, i in enumerate(word_order)}
    word_rows = [{
        "index": i, "text": w.text, "kind": _word_kind(w), "tokens": list(w.tokens),
        "token_strings": [tokens[t] for t in w.tokens], "rank": word_rank[i], "mass": _num(masses[i]),
        "share": _num(masses[i] / total),
    } for i, w in enumerate(view.words)]

    words_of_tokens = membership(len(tokens), [w.tokens for w in view.words]).astype(np.float64)
    step_rows = []
    for s in stats.steps:
        step_total = max(float(s.token_mass.sum()), 1e-30)
        word_mass = s.token_mass @ words_of_tokens
        location_winner = int(np.argmax(s.win_share))
        step_rows.append({
            "index": s.index, "position": s.position, "timestep": _num(s.timestep), "sigma": _num(s.sigma),
            "expert": int(s.expert), "text_entropy": _num(s.text_entropy), "top_token": s.top_token,
            "top_share": _num(s.top_share), "top_token_location_share": _num(s.win_share[s.top_token]),
            "padding_mass": _num(s.padding), "change": _num(s.change),
            "location_winner": location_winner, "location_winner_share": _num(s.win_share.max()),
            "top_tokens": [{"token": int(t), "share": _num(s.token_mass[t] / step_total)}
                           for t in np.argsort(-s.token_mass, kind="stable")[:3]],
            "top_words": [{"word": int(w), "text": view.words[w].text, "share": _num(word_mass[w] / step_total)}
                          for w in np.argsort(-word_mass, kind="stable")[:3]],
        })

    padding = stats.padding_by_step_layer()
    layer_rows = [{"block": int(b), "padding_mean": _num(padding[:, i].mean()),
                   "padding_min": _num(padding[:, i].min()), "padding_max": _num(padding[:, i].max())}
                  for i, b in enumerate(analysis.layer_blocks)]
    profile = None
    if analysis.layer_profile is not None:
        for i, row in enumerate(layer_rows):
            best = int(np.argmax(analysis.layer_profile[i]))
            row.update({"top_unit": best, "top_unit_label": units[best].label,
                        "top_unit_share": _num(analysis.layer_profile[i, best]),
                        "unit_shares": [_num(v) for v in analysis.layer_profile[i]]})
        profile = {"units": [u.label for u in units], "shares": [[_num(v) for v in row]
                                                                 for row in analysis.layer_profile]}

    head_rows = [{"rank": r, "layer_block": int(h.layer_block), "head": int(h.head), "entropy": _num(h.entropy),
                  "padding_mass": _num(h.padding), "top_token": int(h.top_token),
                  "top_token_mass": _num(h.top_token_mass)} for r, h in enumerate(analysis.heads, start=1)]

    video_written = np.asarray(view.video_written, dtype=bool)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "store": {
            "location": str(view.location), "branch": view.branch, "status": view.status,
            "model_id": _plain(attrs.get(Attr.MODEL_ID)), "model_class": _plain(attrs.get(Attr.MODEL_CLASS)),
            "prompt": view.prompt, "negative_prompt": _plain(attrs.get(Attr.NEGATIVE_PROMPT)),
            "seed": _plain(attrs.get(Attr.SEED)), "width": _plain(attrs.get(Attr.WIDTH)),
            "height": _plain(attrs.get(Attr.HEIGHT)), "num_frames": _plain(attrs.get(Attr.NUM_FRAMES)),
            "latent_grid": [grid.get(GridKey.FRAMES), grid.get(GridKey.HEIGHT), grid.get(GridKey.WIDTH)],
            "video_frames": int(view.num_video_frames), "video_frames_written": int(video_written.sum()),
            "num_inference_steps": _plain(attrs.get(Attr.NUM_INFERENCE_STEPS)),
            "guidance_scale": _plain(attrs.get(Attr.GUIDANCE_SCALE)),
            "guidance_scale_2": _plain(attrs.get(Attr.GUIDANCE_SCALE_2)),
            "scheduler": _plain(attrs.get(Attr.SCHEDULER)),
            "versions": _plain(attrs.get(Attr.VERSIONS) or {}),
            "record_options": _plain(attrs.get(Attr.RECORD_OPTIONS) or {}),
            "num_tokens": len(tokens), "num_keys": int(view.num_keys),
        },
        "analysis": {
            "steps_recorded": [s.index for s in view.steps],
            "steps_missing": [s.index for s in view.missing_steps],
            "steps_analysed": [s.index for s in analysis.steps],
            "steps_skipped": [{"index": e.step.index, "position": e.step.position, "reason": e.reason}
                              for e in analysis.skipped],
            "layers": [int(b) for b in analysis.layer_blocks],
            "normalize": analysis.options.normalize,
            "word_reduction": analysis.options.word_reduction,
            "num_queries": int(n_queries),
        },
        "tokens": token_rows,
        "words": word_rows,
        "steps": step_rows,
        "entropy": {
            "text_entropy_mean": _num(np.mean([s.text_entropy for s in stats.steps])),
            "text_entropy_uniform": _num(math.log(max(len(tokens), 1))),
            "spatial_entropy_uniform": _num(math.log(max(n_queries, 1))),
        },
        "winner_stability": _num(stats.winner_stability()),
        "segmentation": [{"index": i, "label": u.label, "kind": u.kind, "tokens": list(u.tokens),
                          "segment_share": _num(analysis.segment_share[i])} for i, u in enumerate(units)],
        "padding": {"mean": _num(padding.mean()), "layers": [dict(r) for r in layer_rows]},
        "layers": layer_rows,
        "layer_profile": profile,
        "heads": head_rows,
    }


_COLUMNS = {
    "tokens": ["index", "token", "word", "rank", "mass", "share", "steps_won", "location_win_share",
               "spatial_entropy", "spatial_entropy_normalised", "modal_location_share"],
    "words": ["index", "text", "kind", "tokens", "token_strings", "rank", "mass", "share"],
    "steps": ["index", "position", "timestep", "sigma", "expert", "text_entropy", "top_token", "top_share",
              "top_token_location_share", "padding_mass", "change", "location_winner", "location_winner_share"],
    "layers": ["block", "padding_mean", "padding_min", "padding_max", "top_unit", "top_unit_label",
               "top_unit_share"],
    "heads": ["rank", "layer_block", "head", "entropy", "padding_mass", "top_token", "top_token_mass"],
}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    return path


def write_statistics(analysis: Analysis, out: Path) -> list[Path]:
    """Write the JSON and the CSV tables into ``out``; return their paths, the JSON first."""
    document = statistics_document(analysis)
    path = out / STATISTICS
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    written = [path]
    for table in TABLES:
        rows = document[table]
        if not rows:
            continue
        columns = list(_COLUMNS[table])
        if table == "layers" and document["layer_profile"] is not None:
            columns += [f"share:{label}" for label in document["layer_profile"]["units"]]
            rows = [{**row, **{f"share:{label}": v for label, v in zip(document["layer_profile"]["units"],
                                                                       row["unit_shares"])}} for row in rows]
        written.append(_write_csv(out / table_name(table), columns, rows))
    return written


def _render(ctx: Context) -> list[Path]:
    return write_statistics(ctx.analysis, ctx.out)


def _report(analysis: Analysis, paths: list[Path], link) -> list[str]:
    return [f"Every number of this report at full precision, schema {SCHEMA} {SCHEMA_VERSION}: "
            f"[{md(paths[0].name)}]({link(paths[0])}); its tables as CSV: "
            + ", ".join(f"[{md(p.name)}]({link(p)})" for p in paths[1:]) + "."]


OUTPUT = Output("statistics", "Machine-readable statistics",
                f"{STATISTICS} (every number of the report, schema version {SCHEMA_VERSION}) and "
                f"attention_statistics_<table>.csv ({', '.join(TABLES)})", _render, report=_report)
