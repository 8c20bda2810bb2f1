"""The numbers of the report, checked against a synthetic store whose answers are known.

small_spec: tokens "a", "red", "cat", "s", ".", "</s>"; 4 x 4 x 6 grid; the owner of a
location gets 0.6 (layer 0) and 0.8 (layer 3), so 0.7 on the layer mean, every other
token 0.04, the pad keys 0.1. Step 0 and 2: "red" owns frames 0-1, "cat" frame 2, "a"
frame 3; step 1: "cat" owns everything.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from synthetic_store import small_spec, write_store

from analyzer.run import analyze


def tables_under(markdown: str, heading: str) -> list[list[dict]]:
    """Every Markdown table between ``heading`` and the next heading of any level, as row dicts."""
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    tables, current, header = [], None, None
    for line in lines[start:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header, current = cells, []
            elif set("".join(cells)) <= set("-"):
                continue
            else:
                current.append(dict(zip(header, cells)))
        elif header is not None:
            tables.append(current)
            header, current = None, None
    if header is not None:
        tables.append(current)
    return tables


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    written_arrays = write_store(root / "store", small_spec())
    written = analyze(root / "store", root / "out", progress=False,
                      outputs=["report", "segmentation", "layers", "heads", "padding"])
    return written_arrays, written["report"].read_text(encoding="utf-8")


def reference_mean(arrays) -> np.ndarray:
    """(steps, Q, T) layer-mean attention computed here, independently of the analyzer."""
    att = arrays["attention"].astype(np.float64)
    s, n_layers = att.shape[:2]
    return att.mean(axis=1).reshape(s, -1, att.shape[-1])


def test_token_ranking_and_masses(analysed):
    arrays, report = analysed
    rows = tables_under(report, "### Tokens")[0]
    assert [r["Token"] for r in rows[:3]] == ["2: cat", "1: red", "0: a"]
    expected = reference_mean(arrays).mean(axis=(0, 1))
    for row in rows:
        t = int(row["Token"].split(":")[0])
        assert float(row["Mass"]) == pytest.approx(expected[t], abs=1e-4)
        assert float(row["Share"]) == pytest.approx(expected[t] / expected.sum(), abs=1e-4)
    assert float(rows[0]["Mass"]) == pytest.approx(0.37, abs=2e-4)
    assert {r["Token"]: int(r["Steps won"]) for r in rows}["1: red"] == 2


def test_word_ranking_merges_subword_tokens(analysed):
    _, report = analysed
    rows = tables_under(report, "### Words")[0]
    assert rows[0]["Word"] == "cats" and rows[0]["Tokens"] == "cat + s"
    # cat 0.37 plus s 0.04
    assert float(rows[0]["Mass"]) == pytest.approx(0.41, abs=3e-4)
    kinds = {r["Word"]: r["Kind"] for r in rows}
    assert kinds["."] == "punctuation" and kinds["&lt;/s&gt;"] == "special"


def test_step_table_winners_entropy_change(analysed):
    arrays, report = analysed
    rows = tables_under(report, "## Step evolution")[0]
    assert [r["Step"] for r in rows] == ["0", "1", "2"]
    assert [r["Top token"] for r in rows] == ["1: red", "2: cat", "1: red"]
    assert float(rows[1]["Top share"]) == pytest.approx(0.7 / 0.9, abs=2e-4)
    # every query: 0.7 on its owner and 0.04 on five others, renormalised over the text
    p = np.array([0.7] + [0.04] * 5) / 0.9
    entropy = -(p * np.log(p)).sum()
    for r in rows:
        assert float(r["Text entropy"]) == pytest.approx(entropy, abs=1e-3)
        assert float(r["Padding mass"]) == pytest.approx(0.1, abs=1e-4)
    a = reference_mean(arrays)
    change = np.abs(a[1] - a[0]).sum() / a[0].sum()
    assert rows[0]["Change"] == "\u2013"
    assert float(rows[1]["Change"]) == pytest.approx(change, rel=1e-3)


def test_spatial_entropy_matches_reference(analysed):
    arrays, report = analysed
    rows = tables_under(report, "## Attention entropy")[0]
    a = reference_mean(arrays)
    r = a / a.sum(axis=1, keepdims=True)
    expected = (-(r * np.log(r)).sum(axis=1)).mean(axis=0)  # mean over steps, per token
    for row in rows:
        t = int(row["Token"].split(":")[0])
        assert float(row["Spatial entropy"]) == pytest.approx(expected[t], abs=1e-3)
    # tokens never owning a location have a uniform map: ln Q
    uniform = [row for row in rows if row["Token"].startswith("5:")][0]
    assert float(uniform["Spatial entropy"]) == pytest.approx(math.log(96), abs=1e-3)


def test_max_attention_tracking(analysed):
    _, report = analysed
    tables = tables_under(report, "## Maximum-attention token tracking")
    per_step, per_token = tables
    assert [float(r["Locations it wins"]) for r in per_step] == [0.5, 1.0, 0.5]
    shares = {r["Token"]: float(r["Location win share"]) for r in per_token}
    assert shares["2: cat"] == pytest.approx((0.25 + 1 + 0.25) / 3, abs=1e-4)
    assert shares["1: red"] == pytest.approx(1 / 3, abs=1e-4)
    # frames 0-1 are won by "red" at 2 of 3 steps, frame 2 by "cat" always, frame 3 by "a" at 2 of 3
    assert "Winner stability: 0.7500." in report


def test_segmentation_shares(analysed):
    _, report = analysed
    rows = tables_under(report, "## Per-word maps and segmentation")[0]
    assert {r["Word"]: float(r["Segment share"]) for r in rows} == {"a": 0.25, "red": 0.5, "cats": 0.25}


def test_layer_profile_and_heads(analysed):
    _, report = analysed
    profile = tables_under(report, "## Layer profile")[0]
    assert [r["Layer"] for r in profile] == ["0", "3"]
    for row in profile:
        assert sum(float(row[w]) for w in ("a", "red", "cats")) == pytest.approx(1.0, abs=2e-4)
    focused = tables_under(report, "### Most focused heads")[0]
    # synthetic head entropy is 1 + layer position + 0.25 head
    assert [(r["Layer"], r["Head"], float(r["Entropy"])) for r in focused] == \
        [("0", "0", 1.0), ("0", "1", 1.25), ("3", "0", 2.0), ("3", "1", 2.25)]
    least = tables_under(report, "### Least focused heads")[0]
    assert (least[0]["Layer"], least[0]["Head"]) == ("3", "1")


def test_header_definitions_and_links(analysed):
    _, report = analysed
    header = {r["Field"]: r["Value"] for r in tables_under(report, "# Attention analysis report")[0]}
    assert header["Model"] == "synthetic/wan-test (WanPipeline)"
    assert header["Seed"] == "42"
    assert header["Guidance"] == "5.0"
    assert "wan\\_attention=0.1.0" in header["Versions"]
    assert "layer\\_reduction=none" in header["Record options"]
    assert header["Size"].startswith("96 x 64 px")
    for name in ("Token mass", "Word mass", "Text entropy", "Spatial entropy", "Padding mass", "Change", "Winner",
                 "Winner stability", "Segment share", "Head entropy"):
        assert re.search(rf"^- \*\*{name}\*\*: .*[=\u2211]", report, re.M), name
    assert "](token_segmentation.png)" in report and "](padding_mass.png)" in report
    assert "Missing steps: none." in report


def test_top_words_per_step(analysed):
    """Step 0: red 0.37, cat+s 0.205+0.04, a 0.205 of 0.9; step 1: cat+s 0.7+0.04, then a and red 0.04 each."""
    _, report = analysed
    rows = {r["Step"]: r for r in tables_under(report, "### Top words per step")[0]}
    assert rows["0"]["1st (share)"] == f"red ({0.37 / 0.9:.4f})"
    assert rows["0"]["2nd (share)"] == f"cats ({0.245 / 0.9:.4f})"
    assert rows["0"]["3rd (share)"] == f"a ({0.205 / 0.9:.4f})"
    assert rows["1"]["1st (share)"] == f"cats ({0.74 / 0.9:.4f})"
    assert rows["1"]["2nd (share)"] == f"a ({0.04 / 0.9:.4f})"
    assert set(rows) == {"0", "1", "2"}


def test_definitions_say_words_sum_their_tokens(analysed):
    _, report = analysed
    assert "collects more mass than a one-token word" in report
