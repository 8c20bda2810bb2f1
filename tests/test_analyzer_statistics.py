"""The accumulator keeps per-step memory small: no per-step matrices, sums instead of lists."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.reader import Step
from analyzer.statistics import Accumulator, StepData


def _data(position: int, rng) -> StepData:
    attention = rng.random((12, 4)).astype(np.float32)
    return StepData(Step(position, position, 1000.0 - position, 1.0, 0, True), attention,
                    np.full(12, 0.1, dtype=np.float32), rng.random((3, 4)), np.full(3, 0.1))


def test_heatmap_is_returned_not_kept_and_layer_mass_is_summed():
    rng = np.random.default_rng(0)
    stats = Accumulator(12, 4, [(0,), (1, 2)], heatmap_rows=3)
    steps = [_data(p, rng) for p in range(5)]
    for data in steps:
        summary, heatmap = stats.add(data)
        assert summary.index == data.step.index
        expected = data.attention.reshape(3, 4, 4).mean(axis=1)
        np.testing.assert_allclose(heatmap, expected, rtol=1e-6)
    assert not hasattr(stats, "heatmaps")
    assert not isinstance(getattr(stats, "layer_token_mass", None), list)
    np.testing.assert_allclose(stats.layer_profile(), np.mean([d.layer_token_mass for d in steps], axis=0))
    # word maps: the sum of the tokens' maps, one matmul with the membership matrix
    expected_units = np.mean([np.stack([d.attention[:, 0], d.attention[:, 1] + d.attention[:, 2]])
                              for d in steps], axis=0)
    np.testing.assert_allclose(stats.unit_maps(), expected_units, rtol=1e-6)


def test_per_step_maps_only_when_asked():
    rng = np.random.default_rng(1)
    plain = Accumulator(12, 4, [(0,), (3,)], heatmap_rows=2)
    scaled = Accumulator(12, 4, [(0,), (3,)], heatmap_rows=2, normalize="per-step")
    steps = [_data(p, rng) for p in range(3)]
    for data in steps:
        plain.add(data)
        scaled.add(data)
    assert plain.unit_step_scaled_sum is None
    with pytest.raises(ValueError, match='normalize="per-step"'):
        plain.unit_maps(step_scaled=True)
    expected = np.mean([np.stack([d.attention[:, 0], d.attention[:, 3]])
                        / np.stack([d.attention[:, 0], d.attention[:, 3]]).max() for d in steps], axis=0)
    np.testing.assert_allclose(scaled.unit_maps(step_scaled=True), expected, rtol=1e-6)


@pytest.mark.parametrize("block_bytes", [4, 4 * 3 * 7, 1 << 20])  # a row a block, uneven blocks, one block
def test_layer_mean_by_blocks_of_rows_adds_the_layers_in_order(monkeypatch, block_bytes):
    """The blocked layer mean is the float32 sum of whole layers in order, to the bit; each layer's token
    mass is its float64 column mean; the kept layers are the layers as decoded."""
    from analyzer import statistics

    monkeypatch.setattr(statistics, "LAYER_MEAN_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(3)
    att = rng.dirichlet(np.ones(3), size=(5, 101)).astype(np.float16)  # (layers, queries, tokens)
    att[2, 7, 1] = np.float16(3e-7)  # a float16 subnormal
    total, mass, kept = statistics.layer_mean(att, keep=(0, 3))

    expected = np.zeros((101, 3), dtype=np.float32)
    for layer in att.astype(np.float32):
        expected += layer
    assert np.array_equal(total, expected / np.float32(5))
    np.testing.assert_allclose(mass, att.astype(np.float64).mean(axis=1), rtol=1e-6)
    assert set(kept) == {0, 3}
    assert all(np.array_equal(kept[k], att[k].astype(np.float32)) for k in kept)
