"""Capture lifecycle: restoring processors, refusing re-entry, experts per step, writer failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from recorder.capture import AttentionCapture, CaptureConfig
from recorder.probabilities import reduced_attention
from recorder.record import GenerationRequest, record
from recorder.writer import BackgroundWriter, WriterError
from shared import schema


def _processors(pipe):
    return {name: proc for t in (pipe.transformer, pipe.transformer_2) if t is not None
            for name, proc in t.attn_processors.items()}


def test_processors_restored_after_an_exception_inside_the_pipeline(tiny_pipe, small_request, tmp_path):
    before = _processors(tiny_pipe)
    calls = {"n": 0}

    def explode(_module, _args):
        calls["n"] += 1
        if calls["n"] == 4:  # step 1, unconditional pass
            raise RuntimeError("boom in the transformer")

    handle = tiny_pipe.transformer.register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            record(tiny_pipe, small_request, tmp_path / "s.zarr", show_progress=False)
    finally:
        handle.remove()
    after = _processors(tiny_pipe)
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before)
    root = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_FAILED
    assert "boom" in root.attrs[schema.Attr.ERROR]
    # Step 0 finished before the failure and is kept. Step 1 failed after its cond maps were
    # written, so it is marked incomplete; step 2 never ran and reads as NaN, never as zero.
    assert root[schema.STEP_COMPLETE.path][:].tolist() == [True, False, False]
    attention = root[schema.attention("cond").path]
    assert not np.isnan(attention[0]).any()
    assert np.isnan(attention[2]).all()


def test_entering_twice_raises_and_leaves_the_first_capture_intact(tiny_pipe):
    before = _processors(tiny_pipe)
    first = AttentionCapture(tiny_pipe, CaptureConfig(), lambda *a: None, {"cond": 3})
    with first:
        installed = _processors(tiny_pipe)
        with pytest.raises(RuntimeError, match="already active"):
            with AttentionCapture(tiny_pipe, CaptureConfig(), lambda *a: None, {"cond": 3}):
                pass
        assert _processors(tiny_pipe) == installed
    assert all(_processors(tiny_pipe)[n] is p for n, p in before.items())


def test_attention_backend_setting_reaches_the_original_processor(tiny_pipe):
    with AttentionCapture(tiny_pipe, CaptureConfig(layers=(0,)), lambda *a: None, {"cond": 3}):
        wrapper = tiny_pipe.transformer.blocks[0].attn2.processor
        wrapper._attention_backend = "native"
        assert wrapper.original._attention_backend == "native"
        wrapper._attention_backend = None


def test_two_experts_are_tagged_per_step(tiny_two_expert_pipe, tmp_path):
    request = GenerationRequest("a dog runs", height=32, width=48, num_frames=5, num_inference_steps=6)
    result = record(tiny_two_expert_pipe, request, tmp_path / "s.zarr", show_progress=False)
    root = zarr.open_group(result.store, mode="r")
    timesteps = root[schema.STEP_TIMESTEP.path][:]
    experts = root[schema.STEP_EXPERT.path][:]
    boundary = root.attrs[schema.Attr.EXPERT_BOUNDARY]
    assert boundary == pytest.approx(875.0)
    assert experts.tolist() == [0 if t >= boundary else 1 for t in timesteps]
    assert 0 in experts and 1 in experts, "the test schedule must cross the boundary"
    assert experts.tolist() == sorted(experts.tolist()), "high-noise expert first, then low-noise"
    assert not np.isnan(root[schema.attention("cond").path][:]).any()


def test_collapsed_pad_keys_give_the_full_softmax():
    torch.manual_seed(0)
    heads, dim, real, total = 3, 8, 5, 40
    query = torch.randn(1, 37, heads * dim)
    key = torch.randn(1, total, heads * dim)
    key[:, real:] = key[:, real:real + 1]  # identical pads, as Wan's text projection makes them
    merged = reduced_attention(query, key, heads, real, budget_bytes=2000)
    full = reduced_attention(query, key, heads, real, collapse_pad_keys=False)
    assert merged.pad_keys_collapsed and not full.pad_keys_collapsed
    for name in ("attention", "padding_mass", "head_entropy", "head_token_mass", "head_padding_mass"):
        torch.testing.assert_close(getattr(merged, name), getattr(full, name), rtol=1e-5, atol=1e-7)


def test_pad_keys_that_differ_are_not_merged():
    torch.manual_seed(1)
    query, key = torch.randn(1, 10, 16), torch.randn(1, 12, 16)
    reduced = reduced_attention(query, key, 2, 4)
    assert not reduced.pad_keys_collapsed
    q = query[0].unflatten(-1, (2, 8)).transpose(0, 1)
    k = key[0].unflatten(-1, (2, 8)).transpose(0, 1)
    p = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, -1)
    torch.testing.assert_close(reduced.attention, p[..., :4].mean(0))
    torch.testing.assert_close(reduced.padding_mass, p[..., 4:].sum(-1).mean(0))


def test_writer_error_is_raised_in_the_caller():
    writer = BackgroundWriter(max_pending=2)

    def fail():
        raise OSError("disk full")

    writer.submit(fail)
    with pytest.raises(WriterError, match="disk full"):
        writer.flush()
    with pytest.raises(WriterError):
        writer.submit(lambda: None)
    with pytest.raises(WriterError):
        writer.close()


def test_a_failing_write_stops_the_recording(tiny_pipe, small_request, tmp_path, monkeypatch):
    import recorder.store_sink as store_sink

    def broken(self, branch, layer_slot, flat):
        raise OSError("no space left on device")

    monkeypatch.setattr(store_sink.StoreSink, "_gather_heads", broken)
    from recorder.errors import RecordError

    # A write error is one line that names the store, the cause and what was kept.
    with pytest.raises(RecordError, match=r"writing the store .*s\.zarr failed: .*no space left.*status 'failed'"):
        record(tiny_pipe, small_request, tmp_path / "s.zarr", show_progress=False)
    root = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_FAILED
    assert "no space left" in root.attrs[schema.Attr.ERROR]


def test_pad_check_runs_once_per_layer_and_branch(tiny_pipe, small_request, tmp_path, monkeypatch):
    # The check reads a flag back from the device; it must not run on every step.
    import recorder.capture as capture_module

    calls = []
    real = capture_module.pad_keys_identical
    monkeypatch.setattr(capture_module, "pad_keys_identical", lambda *a: calls.append(1) or real(*a))
    record(tiny_pipe, small_request, tmp_path / "s.zarr", CaptureConfig(branches=("cond", "uncond")),
           show_progress=False)
    layers = len(tiny_pipe.transformer.blocks)
    assert len(calls) == layers * 2, "one check per layer and branch over all steps"
    root = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert root["cond"].attrs[schema.BranchAttr.PAD_KEYS_COLLAPSED] is True


def test_ti2v_layout_records_on_its_coarser_grid(tmp_path):
    # Wan 2.2 TI2V-5B: VAE factor 16 (grid = pixels / 32) and per-token timesteps.
    from recorder.record import RecordError, generate_plain
    from recorder.tiny import TinyConfig, build_tiny_pipeline

    pipe = build_tiny_pipeline(TinyConfig(ti2v=True))
    request = GenerationRequest("a cat walks", height=64, width=96, num_frames=9, num_inference_steps=2)
    result = record(pipe, request, tmp_path / "s.zarr", show_progress=False)
    assert np.array_equal(result.frames, generate_plain(pipe, request))
    root = zarr.open_group(result.store, mode="r")
    grid = root.attrs[schema.Attr.LATENT_GRID]
    assert (grid["frames"], grid["height"], grid["width"], grid["vae_scale_factor_spatial"]) == (3, 2, 3, 16)
    attention = root[schema.attention("cond").path][:].astype(np.float64)
    np.testing.assert_allclose(attention.sum(-1) + root[schema.padding_mass("cond").path][:], 1.0, atol=1e-2)
    with pytest.raises(RecordError, match="multiple of 32"):
        record(pipe, GenerationRequest("x", height=48, width=96, num_frames=9), tmp_path / "t.zarr")


def test_fused_projections_record_the_same_maps(small_request, tmp_path):
    # fuse_qkv_projections() computes k and v with one to_kv layer; norm_k still sees the same keys.
    from recorder.record import generate_plain
    from recorder.tiny import TinyConfig, build_tiny_pipeline

    separate = record(build_tiny_pipeline(TinyConfig()), small_request, tmp_path / "a.zarr", show_progress=False)
    pipe = build_tiny_pipeline(TinyConfig())
    pipe.transformer.fuse_qkv_projections()
    fused = record(pipe, small_request, tmp_path / "b.zarr", show_progress=False)
    assert np.array_equal(fused.frames, generate_plain(pipe, small_request))
    a = zarr.open_group(separate.store, mode="r")[schema.attention("cond").path][:].astype(np.float64)
    b = zarr.open_group(fused.store, mode="r")[schema.attention("cond").path][:].astype(np.float64)
    # Step 0 sees the same latents; later steps drift apart with the (differently rounded) fused video.
    np.testing.assert_allclose(b[0], a[0], rtol=5e-3, atol=1e-6)


def test_a_black_frame_is_written_like_any_other(tmp_path):
    # zarr skips chunks equal to the fill value (0 = black); the reader would take the missing
    # chunk of a frame marked written for corruption.
    from recorder.session import write_video
    from shared.store import BranchLayout, StoreLayout, create_store

    layout = StoreLayout(1, (0,), (1, 1, 1), 1, (BranchLayout("cond", 1),), (3, 16, 16, 3))
    root = create_store(tmp_path / "s.zarr", layout)
    frames = np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32)
    frames[1] = 0.0
    write_video(root, frames)
    assert root[schema.VIDEO_WRITTEN.path][:].tolist() == [True, True, True]
    assert (tmp_path / "s.zarr" / "video" / "c" / "1" / "0" / "0" / "0").is_file()
    assert not root[schema.VIDEO.path][1].any()
