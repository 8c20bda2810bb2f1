"""Machine-readable results: every number of ``attention_statistics.json`` equals the report's; ``info --json`` parses.

The JSON holds full precision, the report 4 decimals (2 for the timestep): each JSON value,
printed the way the report prints it, must be the report's text.
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from analyzer_cli_helpers import run
from synthetic_store import small_spec, write_store

from analyzer.outputs.statistics import SCHEMA, SCHEMA_VERSION, STATISTICS, table_name
from analyzer.run import analyze


def f(value, digits: int = 4) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f}"


def tables_under(report: str, heading: str) -> list[list[list[str]]]:
    """The tables of the section that starts at ``heading`` (up to the next heading), rows as cells."""
    section = report.split(heading + "\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    tables, current = [], None
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return [[row for row in t[2:]] for t in tables]  # without header and rule


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("statistics")
    write_store(root / "store", small_spec())
    written = analyze(root / "store", root / "out", progress=False, outputs="statistics,report")
    document = json.loads(written["statistics"][0].read_text(encoding="utf-8"))
    return root, written, document, written["report"].read_text(encoding="utf-8")


def test_the_json_has_a_schema_and_the_report_links_it(analysed):
    root, written, doc, report = analysed
    assert written["statistics"][0] == root / "out" / STATISTICS
    assert (doc["schema"], doc["schema_version"]) == (SCHEMA, SCHEMA_VERSION)
    assert "(attention_statistics.json)" in report
    for table in ("tokens", "words", "steps", "layers", "heads"):
        assert f"({table_name(table)})" in report
        assert (root / "out" / table_name(table)).is_file()


def test_token_and_word_tables(analysed):
    _, _, doc, report = analysed
    tokens = {t["index"]: t for t in doc["tokens"]}
    rows = tables_under(report, "### Tokens")[0]
    assert len(rows) == len(tokens)
    for rank, token, word, mass, share, won, win, spatial in rows:
        t = tokens[int(token.split(":")[0])]
        assert [rank, mass, share, won, win, spatial] == [str(t["rank"]), f(t["mass"]), f(t["share"]),
                                                          str(t["steps_won"]), f(t["location_win_share"]),
                                                          f(t["spatial_entropy"])]
    words = {w["rank"]: w for w in doc["words"]}
    for rank, text, kind, _, mass, share in tables_under(report, "### Words")[0]:
        w = words[int(rank)]
        assert [text, kind, mass, share] == [w["text"].replace("<", "&lt;").replace(">", "&gt;"), w["kind"],
                                             f(w["mass"]), f(w["share"])]


def test_step_tables(analysed):
    _, _, doc, report = analysed
    steps = {s["index"]: s for s in doc["steps"]}
    for row in tables_under(report, "### Top tokens per step")[0]:
        s = steps[int(row[0])]
        assert row[1:] == [f"{t['token']}: " + cell.split(": ", 1)[1].rsplit(" (", 1)[0]
                           + f" ({f(t['share'])})" for t, cell in zip(s["top_tokens"], row[1:])]
    for row in tables_under(report, "### Top words per step")[0]:
        s = steps[int(row[0])]
        assert [c.rsplit(" (", 1)[1].rstrip(")") for c in row[1:]] == [f(w["share"]) for w in s["top_words"]]
    for index, timestep, sigma, expert, entropy, top, share, padding, change in \
            tables_under(report, "## Step evolution")[0]:
        s = steps[int(index)]
        assert [timestep, sigma, expert, entropy, top.split(":")[0], share, padding, change] == [
            f(s["timestep"], 2), f(s["sigma"]), str(s["expert"]), f(s["text_entropy"]), str(s["top_token"]),
            f(s["top_share"]), f(s["padding_mass"]), f(s["change"])]
    tracking = tables_under(report, "## Maximum-attention token tracking")
    for index, winner, share, wins, most, most_share in tracking[0]:
        s = steps[int(index)]
        assert [winner.split(":")[0], share, wins, most.split(":")[0], most_share] == [
            str(s["top_token"]), f(s["top_share"]), f(s["top_token_location_share"]), str(s["location_winner"]),
            f(s["location_winner_share"])]
    tokens = {t["index"]: t for t in doc["tokens"]}
    for token, won, win, modal in tracking[1]:
        t = tokens[int(token.split(":")[0])]
        assert [won, win, modal] == [str(t["steps_won"]), f(t["location_win_share"]), f(t["modal_location_share"])]


def test_entropy_segmentation_padding_layers_and_heads(analysed):
    _, _, doc, report = analysed
    assert f"mean {f(doc['entropy']['text_entropy_mean'])} nats" in report
    assert f"tokens: {f(doc['entropy']['text_entropy_uniform'])})" in report
    assert f"locations: {f(doc['entropy']['spatial_entropy_uniform'])})" in report
    assert f"Winner stability: {f(doc['winner_stability'])}." in report
    tokens = {t["index"]: t for t in doc["tokens"]}
    for token, spatial, normalised in tables_under(report, "## Attention entropy")[0]:
        t = tokens[int(token.split(":")[0])]
        assert [spatial, normalised] == [f(t["spatial_entropy"]), f(t["spatial_entropy_normalised"])]
    rows = tables_under(report, "## Per-word maps and segmentation")[0]
    assert [(r[0], r[3]) for r in rows] == [(u["label"], f(u["segment_share"])) for u in doc["segmentation"]]
    assert f"analysed steps and layers: {f(doc['padding']['mean'])}." in report
    rows = tables_under(report, "## Padding mass")[0]
    assert rows == [[str(x["block"]), f(x["padding_mean"]), f(x["padding_min"]), f(x["padding_max"])]
                    for x in doc["layers"]]
    rows = tables_under(report, "## Layer profile")[0]
    assert doc["layer_profile"] is not None
    assert rows == [[str(x["block"]), x["top_unit_label"], f(x["top_unit_share"])] + [f(v) for v in x["unit_shares"]]
                    for x in doc["layers"]]
    heads = {h["rank"]: h for h in doc["heads"]}
    for table in tables_under(report, "### Most focused heads") + tables_under(report, "### Least focused heads"):
        for rank, layer, head, entropy, padding, top, mass in table:
            h = heads[int(rank)]
            assert [layer, head, entropy, padding, top.split(":")[0], mass] == [
                str(h["layer_block"]), str(h["head"]), f(h["entropy"]), f(h["padding_mass"]), str(h["top_token"]),
                f(h["top_token_mass"])]


def test_the_csv_tables_hold_the_json_values(analysed):
    root, _, doc, _ = analysed
    with (root / "out" / table_name("tokens")).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["mass"]) for r in rows] == [t["mass"] for t in doc["tokens"]]
    with (root / "out" / table_name("heads")).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["entropy"]) for r in rows] == [h["entropy"] for h in doc["heads"]]
    with (root / "out" / table_name("steps")).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["change"] for r in rows][0] == ""  # no change at the first analysed step
    assert [float(r["text_entropy"]) for r in rows] == [s["text_entropy"] for s in doc["steps"]]


def test_info_json_parses(analysed):
    root, _, _, _ = analysed
    result = run("info", root / "store", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["schema"] == "wan-attention-info" and info["schema_version"]
    assert info["status"] == "complete"
    assert info["steps"]["complete"] == [0, 1, 2]
    assert info["grid"] == {"frames": 4, "height": 4, "width": 6}
    assert [w["text"] for w in info["words"]][:3] == ["a", "red", "cats"]
    assert info["video"]["frames"] == 13 and len(info["video"]["written"]) == 13
