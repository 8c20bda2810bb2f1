"""The worker-process path of the analysis writes the same files as the in-place path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from synthetic_store import small_spec, write_store

from analyzer import arrays, encoders
from analyzer.run import analyze


def test_half_to_single_is_exact_and_flags_invalid_values():
    values = np.array([0.0, 6e-8, 6e-5, 1e-3, 0.5, 1.0, 65504.0], dtype=np.float16)
    decoded = arrays.half_to_single(values, np.empty(values.shape, np.float32))
    assert np.array_equal(decoded, values.astype(np.float32))
    invalid = np.array([np.nan, np.inf, -0.0, -0.5], dtype=np.float16)
    assert (arrays.half_to_single(invalid, np.empty(4, np.float32)) >= arrays.HALF_INVALID).all()


@pytest.mark.parametrize("rows", [1, 63, 64, 1000, 32771])
def test_column_sums_match_numpy(rows):
    a = np.random.default_rng(rows).random((rows, 7), dtype=np.float32)
    assert np.allclose(arrays.column_sums(a), a.sum(axis=0, dtype=np.float64), rtol=1e-6)


def test_worker_processes_write_the_same_files(tmp_path, monkeypatch):
    write_store(tmp_path / "store", small_spec())
    in_place = analyze(tmp_path / "store", tmp_path / "a", progress=False)
    monkeypatch.setattr(encoders, "PROCESS_THRESHOLD_PIXELS", 0)
    monkeypatch.setattr(encoders, "available_cores", lambda: 2)
    pooled = analyze(tmp_path / "store", tmp_path / "b", progress=False)

    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert [p.name for p in pooled["words"]] == [p.name for p in in_place["words"]]
    for name in names:
        if name.suffix in (".png", ".gif"):
            with Image.open(tmp_path / "a" / name) as a, Image.open(tmp_path / "b" / name) as b:
                assert a.size == b.size and getattr(a, "n_frames", 1) == getattr(b, "n_frames", 1), name
                assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))), name
