"""Word maps: the reduction over a word's sub-token maps (sum, mean, max) is an option; the segmentation is fair.

A synthetic store where "cats" is split into two tokens ("▁cat" "s") each attended with
probability p, and the one-token word "dog" with 1.5 p, on latent frames 0-1 (frames 2-3
belong to "a"): the sum gives "cats" 2 p and favours the split word; the mean (p) and the
max (p) do not; the segmentation gives frames 0-1 to "dog" whatever the option.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import zarr
from analyzer_cli_helpers import run
from synthetic_store import owner_blocks, small_spec, write_store

from analyzer.encoders import Encoders
from analyzer.errors import AnalyzerError
from analyzer.options import DEFAULT_WORD_REDUCTION, WORD_REDUCTIONS, Options
from analyzer.reader import StoreView
from analyzer.run import analyze
from analyzer.selection import select
from analyzer.statistics import word_maps
from analyzer.streaming import run_pass
from shared import schema

TOKENS = ["\u2581a", "\u2581cat", "s", "\u2581dog", "</s>"]
P = 0.2
SPLIT = {0: 0.1, 1: P, 2: P, 3: 1.5 * P, 4: 0.1}  # frames 0-1: "cat", "s" p each, "dog" 1.5 p; pad 0.1
OWNED = {0: 0.7, 1: 0.05, 2: 0.05, 3: 0.05, 4: 0.05}  # frames 2-3: "a"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("reduction") / "store"
    grid = (4, 2, 2)
    spec = small_spec(owners=owner_blocks(2, grid, [1, 1, 0, 0]), tokens=TOKENS, prompt="a cats dog")
    write_store(path, spec)
    root = zarr.open_group(str(path), mode="r+")
    att = np.zeros((2, len(spec.layer_blocks), *grid, len(TOKENS)), dtype=np.float32)
    for t in range(len(TOKENS)):
        att[:, :, :2, ..., t] = SPLIT[t]
        att[:, :, 2:, ..., t] = OWNED[t]
    for s in range(2):
        root[schema.attention(schema.BRANCH_COND).path][s] = att[s].astype(np.float16)
    return path


def analysis_of(store, **options):
    view = StoreView(store, "cond", None)
    with Encoders(0, 0) as encoders:
        analysis, _ = run_pass(select(view, Options.of({"progress": False, **options})), {}, encoders,
                               time.perf_counter())
    return analysis


def labels(analysis) -> list[str]:
    return [u.label for u in analysis.units]


@pytest.mark.parametrize("reduction", WORD_REDUCTIONS)
def test_only_the_sum_favours_the_split_word(store, reduction):
    analysis = analysis_of(store, word_reduction=reduction)
    assert labels(analysis) == ["a", "cats", "dog"]
    maps = analysis.stats.unit_maps(reduction=reduction).reshape(3, 4, 2, 2)
    cats, dog = maps[1, :2].mean(), maps[2, :2].mean()
    expected_cats = {"sum": 2 * P, "mean": P, "max": P}[reduction]
    assert cats == pytest.approx(expected_cats, rel=2e-3) and dog == pytest.approx(1.5 * P, rel=2e-3)
    assert (cats > dog) == (reduction == "sum")
    # the overlays (global scale) keep the order; the layer profile follows the option too
    scaled = word_maps(analysis.stats, analysis.view.grid, reduction)
    assert (scaled[1, :2].mean() > scaled[2, :2].mean()) == (reduction == "sum")
    assert (analysis.layer_profile[:, 1] > analysis.layer_profile[:, 2]).all() == (reduction == "sum")


@pytest.mark.parametrize("reduction", WORD_REDUCTIONS)
def test_the_segmentation_does_not_favour_the_split_word(store, reduction):
    analysis = analysis_of(store, word_reduction=reduction)
    winners = analysis.winners  # (F', H', W')
    assert (winners[:2] == 2).all() and (winners[2:] == 0).all()  # "dog" on frames 0-1, "a" on 2-3
    np.testing.assert_allclose(analysis.segment_share, [0.5, 0.0, 0.5])


def test_the_default_is_max_and_the_report_says_which(store, tmp_path):
    assert DEFAULT_WORD_REDUCTION == "max" and Options().word_reduction == "max"
    report = analyze(store, tmp_path / "a", progress=False, outputs="report")["report"].read_text()
    assert "Word reduction (--word-reduction): max" in report
    report = analyze(store, tmp_path / "b", progress=False, outputs="report",
                     word_reduction="sum")["report"].read_text()
    assert "Word reduction (--word-reduction): sum" in report
    assert "reduced by sum" in report  # the layer profile says it too


def test_the_cli_option(store, tmp_path):
    result = run(store, "-o", tmp_path / "out", "--quiet", "--outputs", "report", "--word-reduction", "mean")
    assert result.exit_code == 0, result.output
    assert "Word reduction (--word-reduction): mean" in (tmp_path / "out" / "attention_analysis_report.md").read_text()
    result = run(store, "-o", tmp_path / "bad", "--word-reduction", "median")
    assert result.exit_code != 0 and "median" in result.output
    with pytest.raises(AnalyzerError, match="word reduction"):
        Options.of({"word_reduction": "median"})
