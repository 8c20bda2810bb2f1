"""``wan-analyze study``: statistics across stores with Dask, checked against a plain numpy loop over the stores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic_store import owner_blocks, small_spec, write_store

distributed = pytest.importorskip("dask.distributed")

from analyzer.commands.study import study_command
from analyzer.study import read_inputs

WORDS = {"a": [0], "red": [1], "cats": [2, 3]}  # small_spec's tokens: "▁a ▁red ▁cat s . </s>"
GOOD = 8


def _spec(i: int):
    """Store i: its own owners, owner probabilities and seed; store 5 on a smaller grid."""
    grid = (2, 3, 4) if i == 5 else (4, 4, 6)
    owners = owner_blocks(3, grid, [(i + k) % 4 for k in range(grid[0])])
    owners[1, :, 0] = (i + 2) % 4
    return small_spec(owners=owners, own=(0.5 + 0.02 * i, 0.7 - 0.03 * i), attributes={"seed": i % 2})


def _numpy_summary(arrays) -> dict:
    """The study's per-store numbers, straight from the arrays written (float16 as stored)."""
    att = arrays["attention"].astype(np.float64)  # (S, L, F, H, W, T)
    s, n_layers, *_, t = att.shape
    att = att.reshape(s, n_layers, -1, t)
    mass = att.mean(axis=2)  # (S, L, T)
    step_mass = mass.mean(axis=1)
    out = {"share_step": {}, "share_layer": {}, "entropy_step": {}}
    for word, tokens in WORDS.items():
        out["share_step"][word] = step_mass[:, tokens].sum(axis=1) / step_mass.sum(axis=1)
        out["share_layer"][word] = mass[:, :, tokens].sum(axis=(0, 2)) / mass.sum(axis=(0, 2))
        maps = att.mean(axis=1)[:, :, tokens].sum(axis=2)  # (S, Q)
        r = maps / maps.sum(axis=1, keepdims=True)
        out["entropy_step"][word] = -(r * np.log(r)).sum(axis=1)
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    expected, paths = [], []
    for i in range(GOOD):
        path = root / f"s{i}.zarr"
        expected.append(_numpy_summary(write_store(path, _spec(i))))
        paths.append(path)
    corrupt = root / "corrupt.zarr"
    write_store(corrupt, _spec(0))
    chunk = min(p for p in (corrupt / "cond" / "attention" / "c" / "1").rglob("*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    catalog = root / "catalog.json"
    entries = [{"store": p.name, "prompt": "a red cats.", "seed": i % 2, "batch": "odd" if i % 2 else "even",
                "status": "complete"} for i, p in enumerate(paths)]
    entries.insert(3, {"store": corrupt.name, "seed": 0, "batch": "even", "status": "complete"})
    catalog.write_text(json.dumps({"stores": entries}))
    return {"root": root, "paths": paths, "expected": expected, "corrupt": corrupt, "catalog": catalog}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _aggregate(summaries, measure):
    """word -> coordinate -> (mean, std, count) over the stores, by a plain loop."""
    values = {}
    for summary in summaries:
        for word, row in summary[measure].items():
            for c, v in enumerate(row):
                coordinate = (0, 3)[c] if measure == "share_layer" else c
                values.setdefault((word, coordinate), []).append(v)
    return {k: (np.mean(v), np.std(v), len(v)) for k, v in values.items()}


def _check(rows, expected, key):
    assert len(rows) == len(expected)
    for row in rows:
        mean, std, count = expected[(row["word"], row[key])]
        assert row["count"] == count
        assert row["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
        assert row["std"] == pytest.approx(std, rel=1e-7, abs=1e-12)


def test_study_equals_a_numpy_loop_and_skips_the_corrupt_store(stores, cluster, tmp_path):
    out = tmp_path / "study"
    result = CliRunner().invoke(study_command, [str(stores["catalog"]), "-o", str(out), "--scheduler",
                                                cluster.scheduler_address, "--group-by", "batch", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stderr and "corrupt.zarr" in result.stderr
    assert "studied 8 stores (1 skipped)" in result.stdout
    document = json.loads((out / "study.json").read_text())
    assert [Path(s["store"]).name for s in document["stores"]] == [p.name for p in stores["paths"]]
    assert len(document["skipped"]) == 1 and Path(document["skipped"][0]["store"]).name == "corrupt.zarr"
    assert "checksum" in document["skipped"][0]["reason"] and "\n" not in document["skipped"][0]["reason"]

    expected = stores["expected"]
    overall = document["overall"]
    _check(overall["share_step"], _aggregate(expected, "share_step"), "step")
    _check(overall["share_layer"], _aggregate(expected, "share_layer"), "layer")
    _check(overall["entropy_step"], _aggregate(expected, "entropy_step"), "step")
    # normalised entropy: by ln Q of each store's own grid (store 5 is smaller)
    normalised = [{"entropy_step": {w: v / math.log(96 if i != 5 else 24) for w, v in e["entropy_step"].items()}}
                  for i, e in enumerate(expected)]
    _check(overall["entropy_step_normalised"], _aggregate(normalised, "entropy_step"), "step")
    for batch, members in (("even", expected[0::2]), ("odd", expected[1::2])):
        _check(document["groups"]["batch"][batch]["share_step"], _aggregate(members, "share_step"), "step")
    assert document["stores"][0]["fields"]["batch"] == "even"

    for name in ("study_share_by_step.csv", "study_share_by_layer.csv", "study_entropy_by_step.csv",
                 "study_stores.csv", "study_share_by_step.png", "study_entropy_by_step.png", "study_report.md"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "study_report.md").read_text()
    assert "corrupt.zarr" in report and "checksum" in report and "## By batch" in report


def test_study_cli_errors_are_one_line(stores, cluster, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    runner = CliRunner()
    result = runner.invoke(study_command, [str(stores["paths"][0]), "-o", str(busy), "--scheduler",
                                           cluster.scheduler_address])
    assert result.exit_code == 1 and "not empty" in result.output and len(result.output.strip().splitlines()) == 1
    assert (busy / "x").read_text() == "mine"

    result = runner.invoke(study_command, [str(stores["corrupt"]), str(tmp_path / "missing.zarr"), "-o",
                                           str(tmp_path / "none"), "--scheduler", cluster.scheduler_address])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: no store could be read (2 skipped)")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stores": [{"seed": 1}]}))
    result = runner.invoke(study_command, [str(bad), "-o", str(tmp_path / "o3")])
    assert result.exit_code == 1 and "entry 0 has no \"store\"" in result.output

    result = runner.invoke(study_command, ["-o", str(tmp_path / "o4")])
    assert result.exit_code == 2


def test_catalog_paths_are_relative_to_the_catalog(stores):
    inputs = read_inputs([str(stores["catalog"]), str(stores["paths"][0])])
    assert len(inputs) == GOOD + 2
    assert Path(inputs[0].location) == stores["root"] / "s0.zarr" and inputs[0].fields["batch"] == "even"
    assert inputs[-1].fields == {}
