"""Statistics across many stores, computed with Dask: ``wan-analyze study CATALOG_OR_STORES... -o OUT``.

Each store is one Dask task (:func:`store_summary`, run on a worker): it opens the store's
labelled, lazy xarray view (:meth:`analyzer.recording.Recording.dataset`, ``xr.open_zarr``)
and reads the attention one (step, layer) at a time, so no store is ever loaded whole; it
returns a few small arrays. The client aggregates them (:func:`aggregate`), over all stores
and per value of each ``--group-by`` field, and writes JSON, CSV, plots and a report. A
store that cannot be read (missing, not a store, a corrupt chunk, no complete step) is
reported with a one-line reason and left out.

Definitions, for a store, its complete steps s and its layers l; A_{s,l}[q, t] the attention
of location q (of Q) to text token t, and W(w) the tokens of the words whose text, case-folded,
is w (special and punctuation words are left out; a text that occurs twice counts both):
- mass m_{s,l}[t] = (1/Q) sum_q A_{s,l}[q, t]; the layer mean m_s[t] = (1/L) sum_l m_{s,l}[t].
- share by step: share_s(w) = sum_{t in W(w)} m_s[t] / sum_t m_s[t] (every text token in the denominator,
  the pad keys not), as ``attention_statistics.json``'s per-step shares.
- share by layer: share_l(w) = sum_s sum_{t in W(w)} m_{s,l}[t] / sum_s sum_t m_{s,l}[t].
- spatial entropy by step: with M_s(w)[q] = sum_{t in W(w)} (1/L) sum_l A_{s,l}[q, t] (the word's map of the
  step, layer mean) and r_q = M_s(w)[q] / sum_q' M_s(w)[q'], H_s(w) = -sum_q r_q ln r_q in nats (0 for a
  word with no mass); normalised: H_s(w) / ln Q (1 = spread evenly, 0 = on one location), comparable
  across grids.
Across stores (for each word and step index, or word and layer block): the mean, the standard
deviation (population, ddof = 0) and the count of stores that have that word and step.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analyzer import output
from analyzer.errors import AnalyzerError
from analyzer.text import label, one_line, ranges
from analyzer.text import markdown as md
from shared.schema import Attr

STUDY = "study.json"
REPORT = "study_report.md"
SCHEMA = "wan-attention-study"
SCHEMA_VERSION = "1.0"
CSV_SHARE_STEP = "study_share_by_step.csv"
CSV_SHARE_LAYER = "study_share_by_layer.csv"
CSV_ENTROPY_STEP = "study_entropy_by_step.csv"
CSV_STORES = "study_stores.csv"
PLOT_SHARE_STEP = "study_share_by_step"
PLOT_SHARE_LAYER = "study_share_by_layer"
PLOT_ENTROPY_STEP = "study_entropy_by_step"
PLOTTED_WORDS = 8
# the fields every store gives for grouping (a catalog entry's own fields come first)
STORE_FIELDS = {"prompt": Attr.PROMPT, "seed": Attr.SEED, "model": Attr.MODEL_ID,
                "num_inference_steps": Attr.NUM_INFERENCE_STEPS, "guidance_scale": Attr.GUIDANCE_SCALE}
MEASURES = ("share_step", "share_layer", "entropy_step", "entropy_step_normalised")


@dataclass(frozen=True)
class StoreInput:
    """One store to study: where it is and its catalog fields (the grouping keys)."""

    location: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` wrote, which stores it used and which it skipped (with the reason)."""

    out: Path
    files: list[Path]
    used: list[str]
    skipped: list[tuple[str, str]]
    document: dict


# --- inputs ---------------------------------------------------------------------------------
def _is_catalog(item: str) -> bool:
    return "://" not in item and item.lower().endswith(".json") and os.path.isfile(item)


def read_catalog(path: str | os.PathLike) -> list[StoreInput]:
    """A catalog: ``{"stores": [{"store": ..., field: value, ...}, ...]}`` (as ``wan-record batch`` writes) or the
    list of entries itself. A relative ``store`` is taken relative to the catalog's folder; every other field
    of an entry is a grouping key."""
    text = os.fspath(path)
    try:
        with open(text, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AnalyzerError(f"cannot read the catalog {text}: {getattr(exc, 'strerror', None) or exc}") from None
    entries = document.get("stores") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise AnalyzerError(f"catalog {text} holds no list of stores (expected {{\"stores\": [...]}} or a list)")
    base = os.path.dirname(os.path.abspath(text))
    inputs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("store"), str) or not entry["store"]:
            raise AnalyzerError(f"catalog {text}: entry {i} has no \"store\" path")
        location = entry["store"]
        if "://" not in location and not os.path.isabs(location):
            location = os.path.join(base, location)
        fields = {str(k): v for k, v in entry.items() if k != "store"}
        inputs.append(StoreInput(location, fields))
    return inputs


def read_inputs(items: list[str]) -> list[StoreInput]:
    """Store locations and catalogs (``*.json`` files) as one list of :class:`StoreInput`, in order."""
    inputs: list[StoreInput] = []
    for item in items:
        inputs.extend(read_catalog(item) if _is_catalog(item) else [StoreInput(os.fspath(item))])
    if not inputs:
        raise AnalyzerError("no store to study: name store paths or a catalog.json")
    return inputs


# --- one store (a Dask task) -----------------------------------------------------------------
def _word_groups(view) -> tuple[list[str], list[list[int]]]:
    texts: list[str] = []
    tokens: dict[str, list[int]] = {}
    for word in view.words:
        if word.special or word.punctuation:
            continue
        key = word.text.casefold()
        if key not in tokens:
            texts.append(key)
            tokens[key] = []
        tokens[key].extend(int(t) for t in word.tokens)
    return texts, [tokens[t] for t in texts]


def store_summary(location: str, fields: dict | None = None, storage_options: dict | None = None) -> dict:
    """The small per-store result of the study (see the module's definitions); raises on anything unreadable.

    Reads the attention through the lazy xarray view, one (step, layer) slice at a time, computed with
    Dask's synchronous scheduler inside the task (the task already runs on a worker).
    """
    import dask

    from analyzer.recording import open_recording
    from analyzer.statistics import membership
    from shared import schema

    recording = open_recording(location, storage_options)
    view = recording.view()
    steps = list(view.complete_steps)
    if not steps:
        raise AnalyzerError(f"{location} has no complete step")
    texts, groups = _word_groups(view)
    attrs = recording.attrs
    store_fields = {name: _json_value(attrs.get(key)) for name, key in STORE_FIELDS.items()}
    dataset = recording.dataset()
    attention = dataset["attention"]
    n_layers = attention.sizes[schema.DIM_LAYER]
    n_tokens = attention.sizes[schema.DIM_TOKEN]
    n_queries = int(np.prod([attention.sizes[d] for d in (schema.DIM_FRAME, schema.DIM_Y, schema.DIM_X)]))
    words_of_tokens = membership(n_tokens, groups).astype(np.float64)  # (T, W)
    layer_mass = np.zeros((len(steps), n_layers, n_tokens), dtype=np.float64)
    entropy = np.zeros((len(groups), len(steps)), dtype=np.float64)
    with dask.config.set(scheduler="synchronous"):
        for i, step in enumerate(steps):
            total = np.zeros((n_queries, n_tokens), dtype=np.float64)
            for layer in range(n_layers):
                try:
                    piece = attention.isel({schema.DIM_STEP: step.position, schema.DIM_LAYER: layer}).data.compute()
                except Exception as exc:  # noqa: BLE001 - a chunk that does not decode (checksum, codec, missing)
                    raise AnalyzerError(f"step {step.index}, layer entry {layer}: cannot read the attention: "
                                        f"{type(exc).__name__}: {one_line(exc)}") from None
                values = np.asarray(piece, dtype=np.float64).reshape(n_queries, n_tokens)
                if not np.isfinite(values).all() or (values < 0).any():
                    raise AnalyzerError(f"{location}: step {step.index} layer entry {layer} holds values that are "
                                        "not probabilities (NaN, infinite or negative)")
                layer_mass[i, layer] = values.sum(axis=0) / n_queries
                total += values
            word_maps = (total / n_layers) @ words_of_tokens  # (Q, W)
            sums = word_maps.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = word_maps / np.where(sums > 0, sums, 1.0)
                terms = np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0)
            entropy[:, i] = np.where(sums > 0, -terms.sum(axis=0), 0.0)
    step_mass = layer_mass.mean(axis=1)  # (S, T)
    step_word = step_mass @ words_of_tokens  # (S, W)
    step_total = np.maximum(step_mass.sum(axis=1), 1e-300)
    layer_word = layer_mass.sum(axis=0) @ words_of_tokens  # (L, W)
    layer_total = np.maximum(layer_mass.sum(axis=(0, 2)), 1e-300)
    return {
        "store": location,
        "fields": {**store_fields, **(fields or {})},
        "prompt": recording.prompt,
        "grid": [int(n) for n in view.grid],
        "num_queries": n_queries,
        "steps": [int(s.index) for s in steps],
        "layers": [int(b) for b in view.layer_blocks],
        "words": texts,
        "share_step": (step_word / step_total[:, None]).T,  # (W, S)
        "share_layer": (layer_word / layer_total[:, None]).T,  # (W, L)
        "entropy_step": entropy,  # (W, S)
        "entropy_step_normalised": entropy / math.log(n_queries) if n_queries > 1 else np.zeros_like(entropy),
    }


def store_task(location: str, fields: dict | None = None, storage_options: dict | None = None) -> dict:
    """:func:`store_summary` as the Dask task: a store it cannot read gives ``{"store", "error"}`` (one line),
    not an exception, so the workers do not log a traceback for what the report already says."""
    try:
        return store_summary(location, fields, storage_options)
    except Exception as exc:  # noqa: BLE001 - whatever the store did, it is reported and skipped
        return {"store": location, "error": f"{type(exc).__name__}: {_reason(exc)}"}


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# --- aggregation (on the client) -------------------------------------------------------------
def _axis(measure: str) -> str:
    return "layers" if measure == "share_layer" else "steps"


def collect(summaries: list[dict], measure: str) -> dict[tuple[str, int], list[float]]:
    """(word, step index or layer block) -> the value of ``measure`` in each store that has it, in store order."""
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    for summary in summaries:
        table = np.asarray(summary[measure])
        for w, word in enumerate(summary["words"]):
            for c, coordinate in enumerate(summary[_axis(measure)]):
                values[(word, int(coordinate))].append(float(table[w, c]))
    return values


def _rows(summaries: list[dict], measure: str) -> list[dict]:
    key = "layer" if measure == "share_layer" else "step"
    rows = []
    for (word, coordinate), values in collect(summaries, measure).items():
        array = np.asarray(values, dtype=np.float64)
        rows.append({"word": word, key: coordinate, "mean": float(array.mean()), "std": float(array.std()),
                     "count": int(array.size)})
    rows.sort(key=lambda r: (r["word"], r[key]))
    return rows


def _word_order(summaries: list[dict]) -> list[dict]:
    """Per word: the mean over stores of its mean share over the store's steps, and in how many stores it occurs."""
    per_word: dict[str, list[float]] = defaultdict(list)
    for summary in summaries:
        shares = np.asarray(summary["share_step"])
        for w, word in enumerate(summary["words"]):
            per_word[word].append(float(shares[w].mean()))
    rows = [{"word": word, "share_mean": float(np.mean(v)), "share_std": float(np.std(v)), "stores": len(v)}
            for word, v in per_word.items()]
    rows.sort(key=lambda r: (-r["share_mean"], r["word"]))
    return rows


def aggregate(summaries: list[dict]) -> dict:
    """Mean, std and count over the stores, per word x step, word x layer and (entropy) word x step."""
    return {"stores": len(summaries), "words": _word_order(summaries),
            **{measure: _rows(summaries, measure) for measure in MEASURES}}


def group_value(value) -> str:
    """A field's value as a group's name (JSON keys are text)."""
    if value is None:
        return "(missing)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def aggregate_groups(summaries: list[dict], group_by: list[str]) -> dict:
    """{field: {value: aggregate of the stores with that value}} for each grouping field."""
    groups: dict[str, dict] = {}
    for name in group_by:
        members: dict[str, list[dict]] = defaultdict(list)
        for summary in summaries:
            members[group_value(summary["fields"].get(name))].append(summary)
        groups[name] = {value: aggregate(members[value]) for value in sorted(members)}
    return groups


# --- running the tasks ------------------------------------------------------------------------
def _client(scheduler: str | None, workers: int):
    """A dask.distributed client on ``scheduler``, or on a LocalCluster it starts; and that cluster (or None)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise AnalyzerError("wan-analyze study needs dask.distributed: pip install 'dask[array]' distributed") \
            from None
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise AnalyzerError(f"cannot connect to the Dask scheduler {scheduler}: {one_line(exc)}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def _reason(exc: BaseException) -> str:
    text = one_line(str(exc)) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "\u2026"


def summarise(inputs: list[StoreInput], client, storage_options: dict | None = None,
              progress=None) -> tuple[list[dict], list[tuple[str, str]]]:
    """One task per store on ``client``; the summaries (in input order) and the skipped stores with their reason."""
    from dask.distributed import as_completed

    futures = client.map(store_task, [i.location for i in inputs], [i.fields for i in inputs],
                         [storage_options] * len(inputs), pure=False)
    position = {f.key: n for n, f in enumerate(futures)}
    results: list[dict | None] = [None] * len(inputs)
    reasons: dict[int, str] = {}
    for future in as_completed(futures):
        n = position[future.key]
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - a worker that died on the store (KilledWorker, ...)
            result = {"error": f"{type(exc).__name__}: {_reason(exc)}"}
        if "error" in result:
            reasons[n] = result["error"]
        else:
            results[n] = result
        if progress is not None:
            progress(inputs[n].location, reasons.get(n))
    summaries = [r for r in results if r is not None]
    skipped = [(inputs[n].location, reasons[n]) for n in sorted(reasons)]
    return summaries, skipped


def run_study(items: list[str] | list[StoreInput], out: str | os.PathLike, *, scheduler: str | None = None,
              client=None, group_by: list[str] | tuple[str, ...] = (), overwrite: bool = False, workers: int = 2,
              storage_options: dict | None = None, progress=None) -> StudyResult:
    """Study the stores (locations, catalogs or :class:`StoreInput`) into ``out``.

    ``client``: an existing ``dask.distributed.Client`` to use; else ``scheduler`` (an address such as
    ``tcp://host:8786``); else a ``LocalCluster`` of ``workers`` processes, started and closed here.
    Raises :class:`AnalyzerError` when no store could be read (after writing nothing).
    """
    started = time.perf_counter()
    inputs = [i if isinstance(i, StoreInput) else None for i in items]
    if any(i is None for i in inputs):
        inputs = read_inputs([os.fspath(i) for i in items])
    for item in inputs:
        output.check_directory(out, item.location)
    target = output.prepare_directory(out, overwrite)
    cluster = None
    own_client = client is None
    if own_client:
        client, cluster = _client(scheduler, workers)
    try:
        address = getattr(client.scheduler, "address", None) if client is not None else None
        summaries, skipped = summarise(inputs, client, storage_options, progress)
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
    if not summaries:
        raise AnalyzerError(f"no store could be read ({len(skipped)} skipped); the first: "
                            f"{skipped[0][0]}: {skipped[0][1]}" if skipped else "no store to study")
    group_by = list(dict.fromkeys(group_by))
    document = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "definitions": _DEFINITIONS,
        "scheduler": scheduler or ("given client" if not own_client else "local cluster"),
        "scheduler_address": address,
        "seconds": round(time.perf_counter() - started, 3),
        "stores": [{"store": s["store"], "fields": {k: _json_value(v) for k, v in s["fields"].items()},
                    "prompt": s["prompt"], "grid": s["grid"], "steps": s["steps"], "layers": s["layers"],
                    "words": s["words"]} for s in summaries],
        "skipped": [{"store": location, "reason": reason} for location, reason in skipped],
        "group_by": group_by,
        "overall": aggregate(summaries),
        "groups": aggregate_groups(summaries, group_by),
    }
    files = [_write_json(target / STUDY, document)]
    files += _write_csvs(target, document)
    files += _plots(target, document["overall"])
    report = target / REPORT
    report.write_text("\n".join(_report(document, files)) + "\n", encoding="utf-8")
    files.append(report)
    return StudyResult(target, files, [s["store"] for s in summaries], skipped, document)


_DEFINITIONS = {
    "mass": "m_{s,l}[t] = (1/Q) sum_q A_{s,l}[q,t], A the attention of latent location q to text token t at "
            "step s, layer entry l; m_s = mean over the layer entries",
    "word": "the case-folded text of a prompt word (special and punctuation words left out); every occurrence of "
            "the text and all its sub-tokens count",
    "share_step": "sum of m_s[t] over the word's tokens / sum of m_s[t] over every text token",
    "share_layer": "sum over steps of the word's m_{s,l} / sum over steps of every text token's m_{s,l}",
    "entropy_step": "-sum_q r_q ln r_q (nats), r_q = M[q] / sum_q' M[q'], M[q] the word's map of the step: the sum "
                    "over its tokens of the layer-mean attention at q; 0 for a word with no mass",
    "entropy_step_normalised": "entropy_step / ln Q (Q latent locations): 1 spread evenly, 0 on one location",
    "aggregate": "over the stores that have the word and the step (or layer): mean, std (ddof 0), count",
}


# --- writing ------------------------------------------------------------------------------------
def _write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _table(document: dict, measure: str) -> list[dict]:
    """The measure's rows, overall (group "all") and for every group, each row with its group field and value."""
    rows = [{"group_field": "", "group_value": "all", **r} for r in document["overall"][measure]]
    for name, values in document["groups"].items():
        for value, aggregated in values.items():
            rows += [{"group_field": name, "group_value": value, **r} for r in aggregated[measure]]
    return rows


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                             for c in columns])
    return path


def _write_csvs(target: Path, document: dict) -> list[Path]:
    base = ["group_field", "group_value", "word"]
    stats = ["mean", "std", "count"]
    written = [_write_csv(target / CSV_SHARE_STEP, base + ["step"] + stats, _table(document, "share_step")),
               _write_csv(target / CSV_SHARE_LAYER, base + ["layer"] + stats, _table(document, "share_layer"))]
    entropy = _table(document, "entropy_step")
    normalised = {(r["group_field"], r["group_value"], r["word"], r["step"]): r
                  for r in _table(document, "entropy_step_normalised")}
    rows = []
    for r in entropy:
        n = normalised[(r["group_field"], r["group_value"], r["word"], r["step"])]
        rows.append({**r, "normalised_mean": n["mean"], "normalised_std": n["std"]})
    written.append(_write_csv(target / CSV_ENTROPY_STEP, base + ["step"] + stats + ["normalised_mean",
                                                                                   "normalised_std"], rows))
    store_rows = [{"store": s["store"], "status": "used", "reason": "", "prompt": s["prompt"],
                   "steps": ranges(s["steps"]), "fields": json.dumps(s["fields"], ensure_ascii=False)}
                  for s in document["stores"]]
    store_rows += [{"store": s["store"], "status": "skipped", "reason": s["reason"]} for s in document["skipped"]]
    written.append(_write_csv(target / CSV_STORES, ["store", "status", "reason", "prompt", "steps", "fields"],
                              store_rows))
    return written


def _plots(target: Path, overall: dict) -> list[Path]:
    from matplotlib.figure import Figure

    words = [r["word"] for r in overall["words"][:PLOTTED_WORDS]]
    written = []
    for measure, stem, ylabel, key in (("share_step", PLOT_SHARE_STEP, "share of the text attention", "step"),
                                       ("entropy_step_normalised", PLOT_ENTROPY_STEP,
                                        "spatial entropy / ln Q", "step"),
                                       ("share_layer", PLOT_SHARE_LAYER, "share of the text attention", "layer")):
        figure = Figure(figsize=(7, 4), dpi=100)
        ax = figure.subplots()
        for word in words:
            rows = [r for r in overall[measure] if r["word"] == word]
            if not rows:
                continue
            x = np.asarray([r[key] for r in rows], dtype=float)
            mean = np.asarray([r["mean"] for r in rows])
            std = np.asarray([r["std"] for r in rows])
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=label(word, 24))
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("pipeline step" if key == "step" else "transformer block (-1: mean of layers)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"mean over {overall['stores']} stores (band: \u00b1 1 std)", fontsize=9)
        if words:
            ax.legend(fontsize=7, loc="best")
        figure.tight_layout()
        written.append(output.save_figure(figure, target / stem, "png"))
    return written


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _report(document: dict, files: list[Path]) -> list[str]:
    overall = document["overall"]
    lines = ["# Attention across stores", "",
             (f"{len(document['stores'])} stores studied, {len(document['skipped'])} skipped; computed with Dask "
              f"({md(document['scheduler'])}) in {document['seconds']:.1f} s."), ""]
    lines += ["## Definitions", ""]
    lines += [f"- **{md(k.replace('_', ' '))}**: {md(v)}" for k, v in document["definitions"].items()]
    lines += ["", "## Words, over all stores", "",
              "| word | mean share | std | stores |", "| --- | --- | --- | --- |"]
    lines += [f"| {md(r['word'])} | {_fmt(r['share_mean'])} | {_fmt(r['share_std'])} | {r['stores']} |"
              for r in overall["words"]]
    lines.append("")
    lines.append("A word's share here is its share by step averaged over the store's steps, then over the stores.")
    lines.append("")
    for stem, title in ((PLOT_SHARE_STEP, "Share by step"), (PLOT_ENTROPY_STEP, "Normalised spatial entropy by step"),
                        (PLOT_SHARE_LAYER, "Share by layer")):
        lines += [f"### {title}", "", f"![{title}]({stem}.png)", ""]
    for name, values in document["groups"].items():
        lines += [f"## By {md(name)}", "", "| " + md(name) + " | stores | top words (mean share) |",
                  "| --- | --- | --- |"]
        for value, aggregated in values.items():
            top = ", ".join(f"{md(r['word'])} {_fmt(r['share_mean'])}" for r in aggregated["words"][:5])
            lines.append(f"| {md(value)} | {aggregated['stores']} | {top} |")
        lines.append("")
    lines += ["## Stores used", "", "| store | prompt | steps | layers |", "| --- | --- | --- | --- |"]
    lines += [f"| {md(s['store'])} | {md(s['prompt'])} | {ranges(s['steps'])} | {md(ranges(s['layers']))} |"
              for s in document["stores"]]
    lines += ["", "## Stores skipped", ""]
    if document["skipped"]:
        lines += ["| store | reason |", "| --- | --- |"]
        lines += [f"| {md(s['store'])} | {md(s['reason'])} |" for s in document["skipped"]]
    else:
        lines.append("None.")
    lines += ["", "## Files", ""]
    lines += [f"- [{md(p.name)}]({p.name})" for p in files]
    return lines

