"""Recorded maps against an independent float64 reference, and the video against a plain run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from recorder.capture import CaptureConfig
from recorder.record import generate_plain, record
from shared import schema


def _rms_norm(x: torch.Tensor, norm: torch.nn.RMSNorm) -> torch.Tensor:
    eps = norm.eps if norm.eps is not None else torch.finfo(torch.float32).eps
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight.double()


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    return x @ layer.weight.double().T + layer.bias.double()


class ReferenceTap:
    """Records each attn2 call's inputs with forward pre-hooks (no processor involved) and
    recomputes the full 512-key softmax in float64 from the module's own weights."""

    def __init__(self, transformer):
        self.calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.handles = []
        for block_index, block in enumerate(transformer.blocks):
            self.handles.append(block.attn2.register_forward_pre_hook(self._tap(block_index)))

    def _tap(self, block_index):
        def hook(_module, args):
            hidden, context = args[0], args[1]
            self.calls.append((block_index, hidden.detach().clone(), context.detach().clone()))
        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()

    @staticmethod
    @torch.no_grad()
    def probabilities(attn, hidden, context):
        """(heads, queries, keys) float64 softmax over every key, pads included."""
        q = _rms_norm(_linear(hidden[0].double(), attn.to_q), attn.norm_q)
        k = _rms_norm(_linear(context[0].double(), attn.to_k), attn.norm_k)
        h = attn.heads
        q = q.unflatten(-1, (h, -1)).transpose(0, 1)
        k = k.unflatten(-1, (h, -1)).transpose(0, 1)
        return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)


def _reference_maps(pipe, tap, store, branch_pass: int, num_tokens: int, heads=None):
    """Per (step, block): head-reduced real-token maps and padding mass, from the tapped calls."""
    blocks = len(pipe.transformer.blocks)
    per_step = 2 * blocks  # cond pass, then uncond pass
    maps, pads = {}, {}
    for i, (block, hidden, context) in enumerate(tap.calls):
        step, within = divmod(i, per_step)
        if within // blocks != branch_pass:
            continue
        p = ReferenceTap.probabilities(pipe.transformer.blocks[block].attn2, hidden, context)
        if heads is not None:
            p = p[list(heads)]
        maps[step, block] = p[..., :num_tokens].mean(0).numpy()
        pads[step, block] = p[..., num_tokens:].sum(-1).mean(0).numpy()
    return maps, pads


@pytest.mark.parametrize("heads", [None, (1,)])
def test_maps_equal_float64_reference(tiny_pipe, small_request, tmp_path, heads):
    tap = ReferenceTap(tiny_pipe.transformer)
    try:
        result = record(tiny_pipe, small_request, tmp_path / "s.zarr",
                        CaptureConfig(branches=("cond", "uncond"), heads=heads), show_progress=False)
    finally:
        tap.remove()
    root = zarr.open_group(result.store, mode="r")
    for branch_pass, branch in enumerate(schema.BRANCHES):
        tokens = root[branch].attrs[schema.BranchAttr.NUM_REAL_TOKENS]
        attention = root[schema.attention(branch).path][:]
        padding = root[schema.padding_mass(branch).path][:]
        maps, pads = _reference_maps(tiny_pipe, tap, root, branch_pass, tokens, heads)
        assert len(maps) == small_request.num_inference_steps * len(tiny_pipe.transformer.blocks)
        for (step, block), expected in maps.items():
            got = attention[step, block].reshape(-1, tokens).astype(np.float64)
            # float16 storage: relative rounding 2**-11, plus fp32 compute.
            np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-7)
            np.testing.assert_allclose(padding[step, block].reshape(-1), pads[step, block], rtol=2e-3, atol=1e-7)
        total = attention.astype(np.float64).sum(-1) + padding
        np.testing.assert_allclose(total, 1.0, atol=tokens * 2e-3)


def test_head_summaries_equal_reference(tiny_pipe, small_request, tmp_path):
    tap = ReferenceTap(tiny_pipe.transformer)
    try:
        result = record(tiny_pipe, small_request, tmp_path / "s.zarr", show_progress=False)
    finally:
        tap.remove()
    root = zarr.open_group(result.store, mode="r")
    tokens = root["cond"].attrs[schema.BranchAttr.NUM_REAL_TOKENS]
    entropy = root[schema.head_entropy("cond").path][:]
    token_mass = root[schema.head_token_mass("cond").path][:]
    pad_mass = root[schema.head_padding_mass("cond").path][:]
    blocks = len(tiny_pipe.transformer.blocks)
    for i, (block, hidden, context) in enumerate(tap.calls):
        step, within = divmod(i, 2 * blocks)
        if within >= blocks:
            continue
        p = ReferenceTap.probabilities(tiny_pipe.transformer.blocks[block].attn2, hidden, context)
        expected_entropy = (-(p * p.log()).sum(-1)).mean(-1).numpy()
        np.testing.assert_allclose(entropy[step, block], expected_entropy, rtol=1e-5)
        np.testing.assert_allclose(token_mass[step, block], p[..., :tokens].mean(1).numpy(), rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(pad_mass[step, block], p[..., tokens:].sum(-1).mean(-1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("config", [
    CaptureConfig(),
    CaptureConfig(branches=("cond", "uncond"), layer_mean=True, heads=(0,)),
    CaptureConfig(layers=(1,), step_stride=2, query_chunk_bytes=1024),
])
def test_video_is_bit_identical_to_a_plain_run(tiny_pipe, small_request, tmp_path, config):
    plain = generate_plain(tiny_pipe, small_request)
    recorded = record(tiny_pipe, small_request, tmp_path / "s.zarr", config, show_progress=False)
    assert recorded.frames.dtype == plain.dtype
    assert np.array_equal(recorded.frames, plain)
    stored = zarr.open_group(recorded.store, mode="r")[schema.VIDEO.path][:]
    assert np.array_equal(stored, (plain * 255).round().astype(np.uint8))


def test_layer_mean_is_mean_of_layers(tiny_pipe, small_request, tmp_path):
    every = record(tiny_pipe, small_request, tmp_path / "a.zarr", show_progress=False)
    mean = record(tiny_pipe, small_request, tmp_path / "b.zarr", CaptureConfig(layer_mean=True), show_progress=False)
    a = zarr.open_group(every.store, mode="r")
    b = zarr.open_group(mean.store, mode="r")
    assert b[schema.LAYER_BLOCK.path][:].tolist() == [-1]
    expected = a[schema.attention("cond").path][:].astype(np.float64).mean(1)
    np.testing.assert_allclose(b[schema.attention("cond").path][:, 0], expected, rtol=3e-3, atol=1e-7)


def test_step_stride_and_layer_selection(tiny_pipe, small_request, tmp_path):
    result = record(tiny_pipe, small_request, tmp_path / "s.zarr", CaptureConfig(layers=(1,), step_stride=2),
                    show_progress=False)
    root = zarr.open_group(result.store, mode="r")
    assert root[schema.STEP_INDEX.path][:].tolist() == [0, 2]
    assert root[schema.LAYER_BLOCK.path][:].tolist() == [1]
    assert root[schema.STEP_COMPLETE.path][:].all()
    assert not np.isnan(root[schema.attention("cond").path][:]).any()


def test_mantissa_rounding_is_the_documented_lossy_option(tiny_pipe, small_request, tmp_path):
    from recorder.precision import round_mantissa

    exact = record(tiny_pipe, small_request, tmp_path / "a.zarr", show_progress=False)
    from shared.store import StorageOptions

    lossy = record(tiny_pipe, small_request, tmp_path / "b.zarr", storage=StorageOptions(mantissa_bits=3),
                   show_progress=False)
    a = zarr.open_group(exact.store, mode="r")[schema.attention("cond").path][:]
    b = zarr.open_group(lossy.store, mode="r")[schema.attention("cond").path][:]
    assert np.array_equal(b, round_mantissa(torch.from_numpy(a), 3).numpy())
    assert not np.array_equal(a, b)
    normal = a >= np.finfo(np.float16).tiny
    relative = np.abs(b[normal].astype(np.float64) - a[normal]) / a[normal]
    assert relative.max() <= 2.0 ** -4
    assert zarr.open_group(lossy.store, mode="r").attrs["record_options"]["mantissa_bits"] == 3


def test_round_mantissa_known_values():
    from recorder.precision import round_mantissa

    values = torch.tensor([1.0, 0.75, 0.6, 0.59, 0.0], dtype=torch.float16)
    # 1 mantissa bit: representable mantissas are 1.0 and 1.5 (times a power of two).
    assert round_mantissa(values, 1).tolist() == [1.0, 0.75, 0.5, 0.5, 0.0]
    assert round_mantissa(torch.tensor([0.625], dtype=torch.float16), 1).tolist() == [0.75]  # tie rounds up
    assert torch.equal(round_mantissa(values, 10), values)
